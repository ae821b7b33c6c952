"""Over a real Hypercorn server, a WebSocket to a path without a WebSocket route is a clean 404."""

from __future__ import annotations

import json

import httpx
import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.support.live import LiveServer


@pytest.mark.parametrize("path", ["/v1/nothing", "/tts/nothing", "/v1/tts/generate"])
async def test_websocket_handshake_to_an_unserved_path_is_a_404_and_the_server_goes_on(
    live_server: LiveServer, path: str
) -> None:
    url = live_server.base_url.replace("http://", "ws://") + path
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(url):
            pass
    assert refused.value.status_code == 404
    assert json.loads(refused.value.body or b"{}") == {
        "error": {"code": "not_found", "message": f"no route WEBSOCKET {path}"}
    }
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        assert (await http.get("/health")).status_code == 200
