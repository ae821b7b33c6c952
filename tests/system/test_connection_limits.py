"""The cap on open connections: above it a fast 503 (HTTP and WebSocket handshakes), the probes always answered."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, connect_websocket_url, open_websocket_url

from tests.support.live import LiveServer, eventually, start_live_server
from tests.support.processes import BIN, free_port, spawn, wait_healthy
from tts_trio.server import connection_limit
from tts_trio.server.connection_limit import ConnectionLimit
from tts_trio.server.launch import hypercorn_config
from tts_trio.settings import DEFAULT_BACKLOG, Settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "hypercorn.toml"

CAP = 20


@attrs.frozen
class Capped:
    server: LiveServer
    limit: ConnectionLimit


@pytest.fixture
async def capped(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Capped]:
    settings = Settings.load({"voices_path": tmp_path, "slots": 1, "max_connections": CAP}, environ={})
    server, stop = await start_live_server(nursery, settings)
    # What `tts-trio serve` and the ASGI entry do with the app they build (start_live_server serves a bare one);
    # installed before any connection, and Quart looks asgi_app up on every call.
    limit = connection_limit.install(server.app, connection_limit.effective_max_connections(settings))
    try:
        yield Capped(server, limit)
    finally:
        await stop()  # type: ignore[misc]


def test_the_backlog_is_ours_unless_the_config_file_or_a_setting_says_otherwise(tmp_path: Path) -> None:
    assert hypercorn_config(Settings.load(environ={}), None).backlog == DEFAULT_BACKLOG  # not Hypercorn's 100
    assert hypercorn_config(Settings.load(environ={}), REPO_CONFIG, bind_given=False).backlog == 2048
    other = tmp_path / "other.toml"
    other.write_text("backlog = 512\n")
    assert hypercorn_config(Settings.load(environ={}), other, bind_given=False).backlog == 512
    given = Settings.load(environ={"TTS_BACKLOG": "1024"})
    assert hypercorn_config(given, other, bind_given=False).backlog == 1024  # the setting wins


def refused_body(body: bytes | None) -> dict[str, str]:
    error = json.loads(body or b"")["error"]
    assert isinstance(error, dict)
    return error


def gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in the metrics")


async def test_above_the_cap_new_connections_are_refused_and_the_probes_still_answer(
    capped: Capped, nursery: trio.Nursery
) -> None:
    url, limit = capped.server.ws_url, capped.limit
    sockets: list[WebSocketConnection] = [await connect_websocket_url(nursery, url) for _ in range(CAP)]
    await eventually(lambda: limit.open == CAP)

    with trio.fail_after(10), pytest.raises(ConnectionRejected) as rejected:  # refused, not left hanging
        async with open_websocket_url(url):
            pass
    assert rejected.value.status_code == 503
    headers = {name.lower(): value for name, value in rejected.value.headers}
    assert headers[b"retry-after"] == str(connection_limit.RETRY_AFTER).encode()
    error = refused_body(rejected.value.body)
    assert error["code"] == "too_many_connections"
    assert str(CAP) in error["message"]

    async with httpx.AsyncClient(base_url=capped.server.base_url, timeout=10) as http:
        refused = await http.get("/v1/voices")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == str(connection_limit.RETRY_AFTER)
        assert refused.headers["Connection"] == "close"  # the refused client frees its socket
        assert refused.json()["error"]["code"] == "too_many_connections"
        # The probes and the metrics are never refused (nor counted).
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/ready")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert gauge(metrics.text, "tts_open_connections") == CAP
        assert limit.open == CAP

        # One closes: one more gets in.
        await sockets.pop().aclose()
        await eventually(lambda: limit.open == CAP - 1)
        sockets.append(await connect_websocket_url(nursery, url))
        await sockets[-1].ping()
        await eventually(lambda: limit.open == CAP)

        for socket in sockets:
            await socket.aclose()
        await eventually(lambda: limit.open == 0)
        assert gauge((await http.get("/metrics")).text, "tts_open_connections") == 0
        assert (await http.get("/v1/voices")).status_code == 200  # below the cap again


async def test_http_requests_count_while_in_flight_and_idle_keep_alive_does_not(capped: Capped) -> None:
    async with httpx.AsyncClient(base_url=capped.server.base_url, timeout=10) as http:
        for _ in range(CAP + 5):  # more requests than the cap, one connection kept alive between them
            response = await http.post("/v1/tts/generate", json={"text": "Hi."})
            assert response.status_code == 200
        # The keep-alive connection is still open, holding no request (the app's call ends just after the answer).
        await eventually(lambda: capped.limit.open == 0)
        assert (await http.get("/v1/voices")).status_code == 200  # on that same connection


async def test_serve_flags_set_the_cap_and_warn_of_a_backlog_the_kernel_caps(tmp_path: Path) -> None:
    port = free_port()
    somaxconn = connection_limit.SOMAXCONN
    backlog = min(int(somaxconn.read_text()) + 1, 65535) if somaxconn.is_file() else 100
    args = ["--port", str(port), "--voices-path", str(tmp_path), "--max-connections", "1", "--backlog", str(backlog)]
    process = spawn([str(BIN), "serve", *args], {"TTS_ENGINE": "system", "TTS_SLOTS": "1"})
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        url = f"ws://127.0.0.1:{port}/v1/tts/stream"
        async with open_websocket_url(url) as first:
            await first.ping()
            with trio.fail_after(10), pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(url):
                    pass
            assert rejected.value.status_code == 503
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        text = output.decode()
        assert "connection cap 1" in text
        if somaxconn.is_file() and backlog > int(somaxconn.read_text()):
            assert "exceeds net.core.somaxconn" in text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
