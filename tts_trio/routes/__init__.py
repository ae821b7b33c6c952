"""One blueprint per area of the API: health, generate (REST), SSE and WebSocket."""
