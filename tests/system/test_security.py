"""API keys (user and admin, HTTP and WebSocket) and CORS, over the real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import HandshakeError, open_websocket_url

from tests.support.live import LiveServer, start_live_server
from tts_trio.api.security import KeyRing
from tts_trio.settings import Settings

USER = "user-key-0123456789"
ADMIN = "admin-key-9876543210"
FILE_KEY = "file-key-abcdef"


@pytest.fixture
async def secured(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{FILE_KEY}\n\n")
    settings = Settings.load(
        {
            "voices_path": tmp_path / "voices",
            "slots": 1,
            "api_keys": f"{USER}, other",
            "api_keys_file": keys_file,
            "admin_keys": ADMIN,
            "cors_origins": "https://app.example",
        },
        environ={},
    )
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()  # type: ignore[misc]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_guard_v1_routes_and_leave_health_open(
    secured: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url, timeout=30) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/ready")).json() == {"ready": True, "engine": "system"}
        missing = await http.post("/v1/tts/generate", json={"text": "hi"})
        assert (missing.status_code, missing.json()["error"]["code"]) == (401, "unauthorized")
        wrong = await http.get("/v1/voices", headers=auth("nope"))
        assert wrong.status_code == 401
        for key in (USER, FILE_KEY, ADMIN):
            assert (await http.post("/v1/tts/generate", json={"text": "hi"}, headers=auth(key))).status_code == 200
        for method, path in (
            ("POST", "/v1/engines/switch"),
            ("POST", "/v1/voices/de/set"),
            ("DELETE", "/v1/voices/v_1"),
        ):
            response = await http.request(method, path, json={"engine_type": "system"}, headers=auth(USER))
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
        assert (await http.post("/v1/voices/de/set", headers=auth(ADMIN))).status_code == 200
        assert (await http.get("/v1/voices", headers=auth(USER))).status_code == 200
    for key in (USER, ADMIN, FILE_KEY):
        assert key not in caplog.text


async def test_websocket_keys_by_header_or_subprotocol(secured: LiveServer) -> None:
    with pytest.raises(HandshakeError):
        async with open_websocket_url(secured.ws_url):
            pass
    with pytest.raises(HandshakeError):
        async with open_websocket_url(secured.ws_url, subprotocols=["tts-trio", "bearer.wrong"]):
            pass
    # What a browser can do: offer our subprotocol and the key as a second one.
    async with open_websocket_url(secured.ws_url, subprotocols=["tts-trio", f"bearer.{USER}"]) as ws:
        assert ws.subprotocol == "tts-trio"
        await ws.send_message(json.dumps({"action": "ping"}))
        assert json.loads(await ws.get_message()) == {"type": "pong"}
    async with open_websocket_url(secured.ws_url, extra_headers=[(b"Authorization", f"Bearer {ADMIN}".encode())]) as ws:
        await ws.send_message(json.dumps({"action": "ping"}))
        assert json.loads(await ws.get_message()) == {"type": "pong"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Token {USER}"},  # Deepgram's clients
        {"xi-api-key": USER},  # ElevenLabs'
        {"X-API-Key": USER},  # Cartesia's LiveKit plugin
    ],
    ids=["token", "xi-api-key", "x-api-key"],
)
async def test_keys_in_the_vendor_clients_headers_open_every_guarded_route(
    secured: LiveServer, headers: dict[str, str]
) -> None:
    wrong = {name: value.replace(USER, "nope") for name, value in headers.items()}
    async with httpx.AsyncClient(base_url=secured.base_url, timeout=30) as http:
        for method, path, body in (
            ("POST", "/v1/tts/generate", {"text": "hi"}),
            ("POST", "/v1/speak", {"text": "hi"}),
            ("POST", "/v1/text-to-speech/any", {"text": "hi"}),
            ("POST", "/tts/bytes", {"transcript": "hi", "voice": {"mode": "id", "id": "x"}}),
        ):
            refused = await http.request(method, path, json=body, headers=wrong)
            assert refused.status_code == 401, path
            assert (await http.request(method, path, json=body)).status_code == 401, path
            served = await http.request(method, path, json=body, headers=headers)
            assert served.status_code == 200, (path, served.text)
            assert served.content
        # A user key in another header is still a user key: admin routes stay closed.
        assert (await http.post("/v1/engines/switch", json={"engine": "system"}, headers=headers)).status_code == 403
    extra = [(name.encode(), value.encode()) for name, value in headers.items()]
    with pytest.raises(HandshakeError):
        async with open_websocket_url(secured.base_url.replace("http://", "ws://") + "/tts/websocket"):
            pass
    async with open_websocket_url(secured.ws_url, extra_headers=extra) as ws:
        await ws.send_message(json.dumps({"action": "ping"}))
        assert json.loads(await ws.get_message()) == {"type": "pong"}


async def test_cors_allows_only_listed_origins(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        allowed = await http.get("/health", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "Origin" in allowed.headers["vary"]
        other = await http.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = await http.options(
            "/v1/tts/generate",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in preflight.headers


def test_key_ring_roles_and_repr() -> None:
    ring = KeyRing.from_settings(["u1", "u2"], ["a1"])
    assert (ring.role("u2"), ring.role("a1"), ring.role("x"), ring.role(None)) == ("user", "admin", None, None)
    assert "u1" not in repr(ring) and "a1" not in repr(ring)
    assert not KeyRing().enabled
    settings = Settings.load(environ={"TTS_API_KEYS": "secret-1", "TTS_ADMIN_KEYS": "secret-2"})
    assert "secret" not in repr(settings)


async def test_without_keys_everything_is_open(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        assert (await http.get("/v1/voices")).status_code == 200
        assert "access-control-allow-origin" not in (await http.get("/health", headers={"Origin": "https://x"})).headers
