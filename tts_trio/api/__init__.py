"""The HTTP and WebSocket API: the app factory, its shared state, routes, the WebSocket protocol and errors."""
