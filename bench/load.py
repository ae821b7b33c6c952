"""Load and soak runs against a real server process, on loopback only.

Three scenarios, each bounded in count and time:

* ``connections``: many idle-ish WebSocket connections pinging while a number
  of streams run; every ping must be answered and every stream must finish.
* ``soak``: thousands of short requests; the server's memory (RSS, with its
  engine workers) must not grow beyond a small bound.
* ``disconnects``: streams dropped mid-audio, over and over; afterwards no
  slot is in use and every later request succeeds.

It also holds the ``h2load`` driver of the benchmark's throughput rows
(:func:`h2load_throughput`): a C client, so the figures are the server's and
not the client's CPU.

``python bench/load.py`` runs the full sizes and prints figures for the
README; the test suite runs the same functions at smaller sizes.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import trio
from trio_websocket import open_websocket_url

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog near the river bank. "
    "Dr. Smith arrived at 3.30 p.m. and greeted everyone in the hall. "
    "Is this the real life, or is it just fantasy? "
    "Caught in a landslide, there is no escape from reality. "
    "Open your eyes and look up to the skies and see."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (the engine workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) != pid and int(stat[1]) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def start_server(port: int, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("tts-trio")), "serve", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen([*command, *(extra or [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_ready(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        with trio.fail_after(30):
            while True:
                try:
                    if (await http.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    await trio.sleep(0.05)


async def connections(base_url: str, sockets: int, streams: int, pings: int) -> dict[str, Any]:
    """``sockets`` WebSockets ping ``pings`` times each while ``streams`` SSE streams run."""
    ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
    latencies: list[float] = []
    done_streams = 0
    started = time.perf_counter()

    async def pinger() -> None:
        async with open_websocket_url(ws_url) as ws:
            for _ in range(pings):
                sent = time.perf_counter()
                await ws.send_message(json.dumps({"action": "ping"}))
                assert json.loads(await ws.get_message()) == {"type": "pong"}
                latencies.append(time.perf_counter() - sent)
                await trio.sleep(0.05)

    async def streamer(http: httpx.AsyncClient) -> None:
        nonlocal done_streams
        response = await http.get("/v1/tts/stream-sse", params={"text": " ".join([PARAGRAPH] * 4)})
        assert "event: done" in response.text
        done_streams += 1

    limits = httpx.Limits(max_connections=streams)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http,
        trio.open_nursery() as nursery,
    ):
        for _ in range(sockets):
            nursery.start_soon(pinger)
        for _ in range(streams):
            nursery.start_soon(streamer, http)
    latencies.sort()
    return {
        "sockets": sockets,
        "streams": streams,
        "pings": len(latencies),
        "streams_done": done_streams,
        "ping_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "ping_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


async def soak(base_url: str, pid: int, requests: int, concurrency: int) -> dict[str, Any]:
    """``requests`` short generate/SSE requests; RSS before (after warm-up) and after."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for _ in range(50):  # warm up allocators and caches before the first reading
            await http.post("/v1/tts/generate", json={"text": "Warm up."})
        before = tree_rss_mb(pid)
        failures = 0
        remaining = requests
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                if remaining % 2:
                    response = await http.post("/v1/tts/generate", json={"text": "Soak test sentence number one."})
                else:
                    response = await http.get("/v1/tts/stream-sse", params={"text": "Soak test, streamed."})
                failures += response.status_code != 200

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - started
        after = tree_rss_mb(pid)
    return {
        "requests": requests,
        "failures": failures,
        "requests_per_s": round(requests / elapsed, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(after - before, 1),
    }


async def disconnects(base_url: str, cycles: int) -> dict[str, Any]:
    """Drop ``cycles`` streams right after their first audio; then check slots and serve again."""
    text = " ".join([PARAGRAPH] * 20)
    ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for cycle in range(cycles):
            if cycle % 2:
                async with open_websocket_url(ws_url) as ws:
                    await ws.send_message(json.dumps({"action": "generate", "text": text}))
                    while not isinstance(await ws.get_message(), bytes):
                        pass
            else:
                async with (
                    httpx.AsyncClient(base_url=base_url, timeout=60) as dropper,
                    dropper.stream("GET", "/v1/tts/stream-sse", params={"text": text}) as response,
                ):
                    async for line in response.aiter_lines():
                        if line.startswith("event: audio"):
                            break
        with trio.fail_after(10):
            while True:
                health = (await http.get("/health")).json()
                if health["slots"]["in_use"] == 0 and health["active_streams"] == 0:
                    break
                await trio.sleep(0.02)
        later = [await http.post("/v1/tts/generate", json={"text": f"After {n}."}) for n in range(20)]
    return {
        "cycles": cycles,
        "slots_in_use_after": health["slots"]["in_use"],
        "active_streams_after": health["active_streams"],
        "later_requests_ok": sum(response.status_code == 200 for response in later),
        "later_requests": len(later),
    }


# -- h2load: SSE streams from a C client (the benchmark's throughput rows) ----
H2LOAD_MISSING = "h2load not found: `scripts/setup.sh --test` installs it (Debian: apt-get install nghttp2-client)"


def h2load_throughput(
    base_url: str, text: str, streams: int, total: int, *, h1: bool, min_bytes: int
) -> dict[str, Any]:
    """Streams of ``text`` per second for ``total`` SSE streams, ``streams`` at a time.

    Over HTTP/1.1 every stream has its own connection; over h2c they are all
    multiplexed on one. h2load counts a request done when its body ended;
    over HTTP/1.1 it does not parse Hypercorn's status line (no reason
    phrase), so there "done" without errors is what counts, and the bytes
    received are checked against ``min_bytes`` per stream (a whole text).
    """
    query = urlencode({"text": text, "chunk_size": 4096})
    url = f"{base_url}/v1/tts/stream-sse?{query}"
    shape = ["--h1", "-c", str(streams)] if h1 else ["-c", "1", "-m", str(streams)]
    output = subprocess.run(
        ["h2load", "-n", str(total), *shape, url], capture_output=True, text=True, timeout=300, check=False
    ).stdout
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", output)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, \d+ failed, (\d+) errored", output
    )
    data = re.search(r"traffic: .*?, [\d.]+\w* \(\d+\) headers .*?, [\d.]+\w* \((\d+)\) data", output)
    if not (finished and counts and data):
        raise RuntimeError(f"could not read h2load's output:\n{output}")
    done, succeeded, errored = int(counts[2]), int(counts[3]), int(counts[4])
    ok = (done if h1 else succeeded) == total and errored == 0 and int(data[1]) >= total * min_bytes
    return {"rate": float(finished[3]), "ok": ok, "done": done}


async def run(sockets: int, streams: int, soak_requests: int, cycles: int) -> dict[str, Any]:
    port = free_port()
    server = start_server(port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base_url)
        return {
            "connections": await connections(base_url, sockets, streams, pings=5),
            "soak": await soak(base_url, server.pid, soak_requests, concurrency=8),
            "disconnects": await disconnects(base_url, cycles),
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description="Load and soak runs (loopback only, bounded).")
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--soak-requests", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args()
    results = trio.run(run, args.sockets, args.streams, args.soak_requests, args.cycles)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
