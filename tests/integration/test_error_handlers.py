"""Every error handler answers in both contexts Quart dispatches errors in: HTTP and a WebSocket handshake.

A WebSocket to a path the server does not serve used to be an HTTP 500 with
a traceback in the log: the HTTP error handler read ``request``, which does
not exist while a WebSocket is being routed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from quart.testing import WebsocketResponseError
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as WerkzeugNotFound

from tts_trio.api.app import create_app
from tts_trio.errors import ApiError, QueueFull
from tts_trio.settings import Settings


async def _handshake_refusal(app: Any, path: str) -> tuple[int, dict[str, Any]]:
    """Open a WebSocket to ``path`` and return the HTTP answer that refused it."""
    client = app.test_client()
    refusals: list[WebsocketResponseError] = []
    try:
        async with client.websocket(path) as ws:
            await ws.send("{}")
            await ws.receive()
    except* WebsocketResponseError as group:
        refusals.extend(error for error in group.exceptions if isinstance(error, WebsocketResponseError))
    assert refusals, f"the WebSocket to {path} was accepted"
    response = refusals[0].response
    return response.status_code, json.loads(await response.get_data())


@pytest.mark.parametrize("path", ["/v1/nothing", "/tts/nothing", "/v1/tts/generate", "/health", "/v1/voices/create"])
async def test_websocket_to_a_path_without_a_websocket_route_is_404(
    test_app: QuartTrio, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        status, body = await _handshake_refusal(test_app, path)
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": f"no route WEBSOCKET {path}"}}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_http_get_of_the_websocket_route_says_what_it_is(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get("/v1/tts/stream")
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "bad_request"
    assert "WebSocket route" in body["error"]["message"]


def _example_of(error_class: type[BaseException]) -> BaseException:
    if issubclass(error_class, ApiError):
        return QueueFull("queued too much", request_id="r-1")
    if error_class is Exception:
        return RuntimeError("secret library text")
    return WerkzeugNotFound()


@pytest.mark.unhandled_errors  # the walk raises a RuntimeError on purpose: the catch-all must answer it
async def test_every_error_handler_answers_a_websocket_handshake(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Walk the registered handlers: each one turns an error raised before accept into a JSON answer."""
    app = create_app(settings)
    handlers = app.error_handler_spec[None][None]
    assert set(handlers) >= {ApiError, HTTPException, Exception}
    raised = {f"/raise/{number}": _example_of(error_class) for number, error_class in enumerate(handlers)}

    async def raise_before_accept(number: str) -> None:
        raise raised[f"/raise/{number}"]

    app.add_websocket("/raise/<number>", "raise_before_accept", raise_before_accept)
    async with app.test_app() as running:
        for path, error in raised.items():
            status, body = await _handshake_refusal(running, path)
            if isinstance(error, ApiError):
                assert (status, body["error"]) == (429, error.to_dict())
            elif isinstance(error, RuntimeError):
                assert (status, body["error"]["code"]) == (500, "internal_error")
                assert "secret" not in json.dumps(body)
            else:
                assert (status, body["error"]["message"]) == (404, f"no route WEBSOCKET {path}")
