"""The browser pages: the playground at ``/``, the API description and its page."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, jsonify

from tts_trio.openapi import build_spec

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
async def playground() -> Any:
    return await current_app.send_static_file("index.html")


@blueprint.get("/docs")
async def docs() -> Any:
    return await current_app.send_static_file("docs.html")


@blueprint.get("/openapi.json")
async def openapi() -> Any:
    return jsonify(build_spec())
