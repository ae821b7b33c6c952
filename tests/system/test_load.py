"""Bounded load, soak and disconnect runs against a real server process (bench/load.py at small sizes).

Behaviour is asserted, not speed: every ping answered, every stream done, no
failed request, memory growth within a small bound, slots back to zero. The
peak rounds assert no handshake failure at their size, every pong, and the
descriptors back after each round; their RSS is printed by the benchmark,
never asserted.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow


def load_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("tts_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tts_load"] = module
    spec.loader.exec_module(module)
    return module


async def test_bounded_load_soak_and_disconnects() -> None:
    load = load_module()
    port = load.free_port()
    server = load.start_server(port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await load.wait_ready(base_url)
        connections = await load.connections(base_url, sockets=200, streams=10, pings=3, interval=0.2)
        assert connections["pings"] == 200 * 3
        assert connections["streams_done"] == 10
        assert connections["pings_during_streams"] > 0
        soak = await load.soak(base_url, server.pid, requests=1500, concurrency=8)
        assert soak["failures"] == 0
        assert soak["rss_growth_mb"] < 40
        cycles = await load.disconnects(base_url, cycles=100)
        assert cycles["slots_in_use_after"] == 0 and cycles["active_streams_after"] == 0
        assert cycles["later_requests_ok"] == cycles["later_requests"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


async def test_bounded_peak_rounds() -> None:
    load = load_module()
    port = load.free_port()
    server = load.start_server(port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await load.wait_ready(base_url)
        result = await load.peaks(
            base_url, server.pid, rounds=2, sockets=300, streams=4, sse_rounds=1, sse=50, settle=0.5
        )
        ws_rounds, sse_rounds = result["rounds"][:2], result["rounds"][2:]
        for row in ws_rounds:
            assert (row["handshake_failures"], row["pong_failures"]) == (0, 0)
            assert row["pongs"] == 300
            assert row["streams_done"] >= 4
            assert row["fds_after"] <= result["idle_fds"] + 2
        for row in sse_rounds:
            assert row["handshake_failures"] == 0  # failed requests; refusals (503) are answers
            assert row["pongs"] + row["pong_failures"] == 50
            assert row["fds_after"] <= result["idle_fds"] + 2
        assert "| ws | 300 |" in load.peaks_table(result)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


async def test_above_the_cap_every_new_connection_is_refused_and_none_hangs() -> None:
    load = load_module()
    result = await load.cap_refusals(cap=20, extra_sockets=40, extra_requests=40)
    assert (result["not_refused"], result["not_refused_kinds"]) == (0, [])
    assert (result["ws_burst_refused"], result["http_burst_refused"]) == (40, 40)
    assert result["ws_alone_refused"] == result["http_alone_refused"] == load.ALONE_REFUSALS
