"""Engines: ``GET /v1/engines`` (what can run here, and why not) and ``POST /v1/engines/switch``.

A switch loads the new engine in worker threads while the old one keeps
serving; streams already running finish on the old engine, which is shut
down after its last stream. A switch that cannot load answers with a clear
4xx or 503 and leaves the old engine current. A switch is recorded on the
shared store, and every replica on it follows within ``TTS_FLEET_POLL``
seconds (:mod:`tts_trio.synthesis.fleet`); the answer's ``generation``
is what each replica's ``/health`` reports in ``fleet.generation`` once it
runs the new engine.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
from quart import Blueprint, jsonify

from tts_trio.api.json_body import read_json_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.engines import CATALOG
from tts_trio.errors import BadRequest, InvalidParameter

blueprint = Blueprint("engines", __name__)


@blueprint.get("/v1/engines")
async def list_engines() -> Any:
    service = current_service()
    settings = current_settings()
    loaded = service.loaded_names()
    resident = service.engines.loaded()

    def describe() -> list[dict[str, Any]]:
        engines = []
        for name, entry in CATALOG.items():
            described = entry.describe(settings)
            described["supported"] = described["available"]
            described["loaded"] = name in loaded
            described["current"] = name == service.engine.name
            # A request may name it (``engine``, or OpenAI's ``model``): the current one and TTS_ENGINES.
            described["resident"] = name in resident
            if name in resident:
                engine = resident[name]
                described["config"] = attrs.asdict(engine.config)
                described["slots"] = engine.pool.statistics().as_dict()
            engines.append(described)
        return engines

    return jsonify(
        {
            "current": service.engine.name,
            "resident": sorted(resident),
            "device": service.device.describe(),
            "engines": await trio.to_thread.run_sync(describe),
        }
    )


@blueprint.post("/v1/engines/switch")
async def switch_engine() -> Any:
    service = current_service()
    settings = current_settings()
    body = await read_json_body(settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object such as {"engine_type": "system", "config": {}}')
    unknown = sorted(set(body) - {"engine_type", "config"})
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(unknown)}")
    engine_type = body.get("engine_type")
    if not isinstance(engine_type, str) or not engine_type:
        raise InvalidParameter("engine_type: the name of an engine is required", field="engine_type")
    config = body.get("config")
    if config is not None and not isinstance(config, dict):
        raise InvalidParameter("config: must be an object", field="config")
    previous = service.engine.name
    loaded, record = await service.switch(engine_type, config)
    return jsonify(
        {
            "engine": loaded.name,
            "previous": previous,
            "config": attrs.asdict(loaded.config),
            "slots": loaded.pool.statistics().total,
            "device": loaded.pool.device,
            "generation": record.generation if record is not None else None,
        }
    )
