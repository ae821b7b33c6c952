"""The browser pages (playground, API description and its page) and the Prometheus endpoint."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app, jsonify

from tts_trio.api.openapi import build_spec
from tts_trio.api.state import current_state

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
async def playground() -> Any:
    return await current_app.send_static_file("index.html")


@blueprint.get("/docs")
async def docs() -> Any:
    return await current_app.send_static_file("docs.html")


@blueprint.get("/metrics")
async def metrics() -> Any:
    """Prometheus text format (open, like ``/health``: scrapers carry no keys)."""
    exposition = current_state().metrics.exposition()
    return Response(exposition, mimetype="text/plain; version=0.0.4")


@blueprint.get("/openapi.json")
async def openapi() -> Any:
    return jsonify(build_spec())
