"""deepgram-compatible routes (being written)."""

from quart import Blueprint

blueprint = Blueprint("deepgram", __name__)
