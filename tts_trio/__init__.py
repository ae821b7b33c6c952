"""tts-trio: a streaming text-to-speech server on Trio, Quart-Trio and Hypercorn."""

__version__ = "0.1.0"
