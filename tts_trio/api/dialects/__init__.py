"""The hosted vendors' protocols, spoken on their own paths: ElevenLabs, Cartesia, Deepgram.

Each module maps one vendor's messages onto the same pipeline, admission and
engine pool as every other route, so a client built for that vendor works
here by changing its base URL.
"""
