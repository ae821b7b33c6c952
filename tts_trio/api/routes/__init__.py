"""One blueprint per area of the HTTP API: generate, SSE, OpenAI, engines, voices, lexicon, health, pages."""
