"""``GET /health``: liveness plus what an operator wants to see at a glance."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, jsonify

from tts_trio.app import current_service

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
async def health() -> Any:
    return jsonify(current_service().health())
