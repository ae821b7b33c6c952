"""``GET /health`` (liveness and what an operator wants to see) and ``GET /ready`` (can it serve).

Both stay open when API keys are configured: load balancers and container
health checks carry no keys.

Both also say whether the voice store can take a write now (a probe that
writes nothing: :meth:`~tts_trio.voices.store.VoiceStore.probe`). A full or
read-only store does not make a replica unready: it still synthesizes with
every voice it has, and only voice changes are refused (507 or 503).
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, jsonify

from tts_trio.api.state import current_service, current_settings, current_state
from tts_trio.synthesis.service import TtsService
from tts_trio.voices.store import StoreState, voice_bytes

blueprint = Blueprint("health", __name__)


async def _probe_store(service: TtsService) -> StoreState:
    need = voice_bytes(current_settings().voice_max_seconds)
    return await trio.to_thread.run_sync(service.store.probe, need)


@blueprint.get("/health")
async def health() -> Any:
    service = current_service()
    body = service.health()
    store = await _probe_store(service)
    body["store"] = store.condition
    body["store_free_bytes"] = store.free_bytes
    return jsonify(body)


@blueprint.get("/ready")
async def ready() -> Any:
    """200 when the engine can take requests, 503 while starting, switching away or shutting down.

    ``store`` appears when the voice store cannot take a write now (``full``,
    ``read_only``, ``unavailable``), and ``fleet`` when this replica does not
    run the fleet's desired engine (yet: ``converging``; or it cannot load it:
    ``diverged``, with the error); the replica stays ready all the same, on
    the engine it has.
    """
    service = current_state().service
    ok = (
        service is not None
        and service.pool.accepting
        and service.pool.healthy
        and not service.shutdown.started.is_set()
    )
    body: dict[str, Any] = {"ready": ok, "engine": service.pool.name if service is not None else None}
    if service is not None:
        store = await _probe_store(service)
        if store.condition != "ok":
            body["store"] = store.condition
        if service.fleet.status in ("converging", "diverged"):
            body["fleet"] = service.fleet.describe()
    response = jsonify(body)
    response.status_code = 200 if ok else 503
    return response
