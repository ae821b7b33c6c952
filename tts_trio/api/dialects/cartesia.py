"""cartesia-compatible routes (being written)."""

from quart import Blueprint

blueprint = Blueprint("cartesia", __name__)
