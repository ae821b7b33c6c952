"""Serving the app: the Hypercorn launch, the ASGI entry point, and the fixes Hypercorn 0.18 needs."""
