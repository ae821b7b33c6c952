"""elevenlabs-compatible routes (being written)."""

from quart import Blueprint

blueprint = Blueprint("elevenlabs", __name__)
