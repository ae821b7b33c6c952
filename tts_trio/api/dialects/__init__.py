"""Other products' APIs spoken on their own paths: ElevenLabs, Cartesia, Deepgram.

Each dialect is a blueprint that maps the vendor's requests and messages
onto the same pipeline, admission and engine pool as our own routes (the
``*_protocol`` modules hold the sans-IO parsing and framing), so a client
library built for the vendor only needs its base URL changed.
"""
