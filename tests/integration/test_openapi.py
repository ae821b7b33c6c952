"""The API description covers every registered route and method."""

from __future__ import annotations

import re

from quart_trio import QuartTrio

from tts_trio.api.app import create_app
from tts_trio.settings import Settings


def test_every_route_is_described(tmp_path: object) -> None:
    from tts_trio.api.openapi import build_spec

    app: QuartTrio = create_app(Settings.load(environ={}))
    paths = build_spec()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        methods = {"get"} if rule.websocket else {m.lower() for m in rule.methods or ()} - {"head", "options"}
        for method in methods:
            if method not in paths.get(path, {}):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


async def test_openapi_json_is_served(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get("/openapi.json")
    spec = await response.get_json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/audio/speech" in spec["paths"]
