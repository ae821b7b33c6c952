"""``GET /health`` (liveness and what an operator wants to see) and ``GET /ready`` (can it serve).

Both stay open when API keys are configured: load balancers and container
health checks carry no keys.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, jsonify

from tts_trio.api.state import current_service, current_state

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
async def health() -> Any:
    return jsonify(current_service().health())


@blueprint.get("/ready")
async def ready() -> Any:
    """200 when the engine can take requests, 503 while starting, switching away or shutting down."""
    service = current_state().service
    ok = (
        service is not None
        and service.pool.accepting
        and service.pool.healthy
        and not service.shutdown.started.is_set()
    )
    response = jsonify({"ready": ok, "engine": service.pool.name if service is not None else None})
    response.status_code = 200 if ok else 503
    return response
