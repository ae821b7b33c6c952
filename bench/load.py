"""Load and soak runs against a real server process, on loopback only.

Five scenarios, each bounded in count and time:

* ``connections``: many open WebSocket connections pinging at a keep-alive's
  pace while a number of streams run; every ping must be answered and every
  stream must finish.
* ``soak``: thousands of short requests; the server's memory (RSS, with its
  engine workers) must not grow beyond a small bound.
* ``disconnects``: streams dropped mid-audio, over and over; afterwards no
  slot is in use and every later request succeeds.
* ``cap``: a server with a connection cap, held at the cap by open
  WebSockets, gets a burst of new WebSocket handshakes and HTTP requests;
  each must be refused (503, ``too_many_connections``) and how long each
  refusal took is reported. None may hang.
* ``peaks``: rounds of N WebSockets open at once (connect, ping, close) while
  M speech streams run, then rounds of N concurrent SSE requests; per round
  the handshake failures, pong latency, open descriptors and the server's
  RSS once the round is over, and at the end the RSS after a quiet minute
  against the idle RSS (peak-and-soak: memory a peak leaves behind).

It also holds the ``h2load`` driver of the benchmark's throughput rows
(:func:`h2load_throughput`): a C client, so the figures are the server's and
not the client's CPU.

``python bench/load.py`` runs the full sizes and prints figures for the
README (``--quick`` for small ones, ``--config FILE`` passes a hypercorn.toml
to the server); the test suite runs the same functions at smaller sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import httpx
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

SCENARIOS = frozenset({"connections", "soak", "disconnects", "peaks", "cap"})

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


def process_rss_mb(pid: int) -> float:
    """RSS of the server process alone (where connections live), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit() -> int:
    """Raise this process's open-files limit to its hard limit (a client with thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(port: int, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("tts-trio")), "serve", "--port", str(port), "--log-level", "warning"]
    # The phrase cache off: the soak repeats its texts, and every repeat would be a replay, not load.
    env = {**os.environ, "TTS_CACHE_BYTES": "0"}
    return subprocess.Popen([*command, *(extra or [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


async def wait_ready(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        with trio.fail_after(30):
            while True:
                try:
                    if (await http.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    await trio.sleep(0.05)


async def connections(base_url: str, sockets: int, streams: int, pings: int, interval: float = 1.0) -> dict[str, Any]:
    """``sockets`` open WebSockets ping ``pings`` times each, ``interval`` s apart, while ``streams`` SSE streams run.

    Two phases, so that one figure does not hide another: first every socket
    connects (all at once; the time until the last is open is reported, as
    the peaks scenario reports handshakes), then, with all of them open, the
    streams start and each socket pings on its own clock (a random phase,
    then every ``interval`` seconds, as a client's keep-alive does). The pong
    latency is that of a server holding ``sockets`` connections while it
    streams speech; pings answered while a stream was running are counted.
    """
    ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
    latencies: list[float] = []
    during_streams = 0
    done_streams = 0
    running_streams = 0
    opened = 0
    all_open = trio.Event()
    pinging_done = trio.Event()
    pingers_left = sockets
    started = time.perf_counter()
    connect_s = 0.0

    async def pinger() -> None:
        nonlocal opened, pingers_left, during_streams, connect_s
        async with open_websocket_url(ws_url) as ws:
            opened += 1
            if opened == sockets:
                connect_s = time.perf_counter() - started
                all_open.set()
            await all_open.wait()
            await trio.sleep(random.uniform(0, interval))  # spreading the pings, not security
            for _ in range(pings):
                sent = time.perf_counter()
                await ws.send_message(json.dumps({"action": "ping"}))
                assert json.loads(await ws.get_message()) == {"type": "pong"}
                latencies.append(time.perf_counter() - sent)
                during_streams += running_streams > 0
                await trio.sleep(interval)
            pingers_left -= 1
            if pingers_left == 0:
                pinging_done.set()
            await pinging_done.wait()  # every socket stays open until the last has pinged

    async def streamer(http: httpx.AsyncClient) -> None:
        nonlocal done_streams, running_streams
        await all_open.wait()
        running_streams += 1
        try:
            response = await http.get("/v1/tts/stream-sse", params={"text": " ".join([PARAGRAPH] * 4)})
        finally:
            running_streams -= 1
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
        "connect_s": round(connect_s, 2),
        "pings": len(latencies),
        "pings_during_streams": during_streams,
        "streams_done": done_streams,
        "ping_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "ping_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


#: Refusals timed one at a time after the burst, per kind.
ALONE_REFUSALS = 50


async def cap_refusals(cap: int, extra_sockets: int, extra_requests: int) -> dict[str, Any]:
    """A server capped at ``cap`` connections, held there by open WebSockets, then a burst above the cap.

    ``extra_sockets`` WebSocket handshakes and ``extra_requests`` HTTP requests
    start at once; each is timed from its start to its refusal (a 503 at the
    handshake, a 503 response). Then :data:`ALONE_REFUSALS` of each, one at a
    time. Anything else (accepted, another status, no answer in 10 s) is
    counted as not refused. A burst's times include this client's own queue:
    on the same 2 cores it opens every connection before it reads an answer.
    """
    port = free_port()
    server = start_server(port, ["--max-connections", str(cap)])
    base_url = f"http://127.0.0.1:{port}"
    ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
    refusals: dict[str, list[float]] = {"ws_burst": [], "http_burst": [], "ws_alone": [], "http_alone": []}
    others: list[str] = []
    try:
        await wait_ready(base_url)
        held = 0
        all_held = trio.Event()
        release = trio.Event()

        async def holder() -> None:
            nonlocal held
            async with open_websocket_url(ws_url) as ws:
                await ws.send_message(json.dumps({"action": "ping"}))
                await ws.get_message()  # accepted and answered: it counts against the cap
                held += 1
                if held == cap:
                    all_held.set()
                await release.wait()

        async def handshake(kind: str) -> None:
            started = time.perf_counter()
            with trio.move_on_after(10):
                try:
                    async with open_websocket_url(ws_url):
                        others.append("ws accepted")
                        return
                except ConnectionRejected as rejected:
                    if rejected.status_code == 503:
                        refusals[kind].append(time.perf_counter() - started)
                    else:
                        others.append(f"ws {rejected.status_code}")
                    return
            others.append("ws no answer")

        async def request(http: httpx.AsyncClient, kind: str) -> None:
            started = time.perf_counter()
            try:
                response = await http.get("/v1/voices")
            except httpx.HTTPError as error:
                others.append(f"http {type(error).__name__}")
                return
            if response.status_code == 503 and response.json()["error"]["code"] == "too_many_connections":
                refusals[kind].append(time.perf_counter() - started)
            else:
                others.append(f"http {response.status_code}")

        limits = httpx.Limits(max_connections=extra_requests, max_keepalive_connections=0)
        async with trio.open_nursery() as holders:
            for _ in range(cap):
                holders.start_soon(holder)
            with trio.fail_after(60):
                await all_held.wait()
            async with (
                httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http,
                trio.open_nursery() as burst,
            ):
                for _ in range(extra_sockets):
                    burst.start_soon(handshake, "ws_burst")
                for _ in range(extra_requests):
                    burst.start_soon(request, http, "http_burst")
            # One at a time: the server's own refusal time, without a burst's queue in the client.
            async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:
                for _ in range(ALONE_REFUSALS):
                    await handshake("ws_alone")
                    await request(http, "http_alone")
            release.set()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    result: dict[str, Any] = {"cap": cap, "not_refused": len(others), "not_refused_kinds": sorted(set(others))}
    for kind, values in refusals.items():
        values.sort()
        result[f"{kind}_refused"] = len(values)
        result[f"{kind}_refusal_p50_ms"] = _percentile_ms(values, 0.5)
        result[f"{kind}_refusal_max_ms"] = round(values[-1] * 1000, 1) if values else None
    return result


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


def _percentile_ms(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))] * 1000, 1)


async def _settled(pid: int, idle_fds: int, within: float) -> int:
    """Wait (up to ``within`` s) for the server's open descriptors to come back near the idle count."""
    with trio.move_on_after(within):
        while open_fds(pid) > idle_fds + 2:  # noqa: ASYNC110 - another process's state
            await trio.sleep(0.1)
    await trio.sleep(1.0)  # the closed connections' tasks end a little after their descriptors
    return open_fds(pid)


#: Seconds after a round's descriptors are back to idle before its RSS is read: the server gives a
#: peak's memory back once its connections have stopped closing, a second or three after the last.
ROUND_SETTLE = 5.0


async def _settled_rss_mb(pid: int) -> float:
    """The server's RSS :data:`ROUND_SETTLE` seconds after a round (the peak over, its memory handed back)."""
    await trio.sleep(ROUND_SETTLE)
    return process_rss_mb(pid)


async def ws_peak_round(
    base_url: str, pid: int, sockets: int, streams: int, idle_fds: int, *, spread: float = 1.0
) -> dict[str, Any]:
    """``sockets`` WebSockets open at once (each waits until all are open), ping once, close; ``streams`` speak."""
    ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
    latencies: list[float] = []
    failures = {"handshake": 0, "pong": 0}
    opened = 0
    all_open = trio.Event()
    pingers_done = trio.Event()
    streams_done = 0

    def maybe_all_open() -> None:
        if opened + failures["handshake"] >= sockets:
            all_open.set()

    async def pinger() -> None:
        nonlocal opened
        connected = False
        try:
            async with open_websocket_url(ws_url, connect_timeout=60) as ws:
                connected = True
                opened += 1
                maybe_all_open()
                await all_open.wait()
                await trio.sleep(random.uniform(0, spread))  # spreading the pings, not security
                try:
                    sent = time.perf_counter()
                    await ws.send_message(json.dumps({"action": "ping"}))
                    with trio.fail_after(60):
                        reply = json.loads(await ws.get_message())
                    if reply != {"type": "pong"}:
                        raise AssertionError(reply)
                    latencies.append(time.perf_counter() - sent)
                except Exception:  # counted; the round goes on
                    failures["pong"] += 1
        except Exception:  # the connection or its handshake failed, or the close did
            if not connected:
                failures["handshake"] += 1
                maybe_all_open()

    async def streamer() -> None:
        nonlocal streams_done
        async with open_websocket_url(ws_url, connect_timeout=60) as ws:
            while not pingers_done.is_set():
                request = {"action": "generate", "text": PARAGRAPH, "output_format": "pcm"}
                await ws.send_message(json.dumps(request))
                while True:
                    message = await ws.get_message()
                    if isinstance(message, str) and json.loads(message).get("type") in ("done", "error"):
                        break
                streams_done += 1

    started = time.perf_counter()
    async with trio.open_nursery() as outer:
        for _ in range(streams):
            outer.start_soon(streamer)
        async with trio.open_nursery() as nursery:
            for _ in range(sockets):
                nursery.start_soon(pinger)
        pingers_done.set()
    seconds = time.perf_counter() - started
    fds = await _settled(pid, idle_fds, within=60)
    return {
        "kind": "ws",
        "size": sockets,
        "streams": streams,
        "handshake_failures": failures["handshake"],
        "pongs": len(latencies),
        "pong_failures": failures["pong"],
        "p50_ms": _percentile_ms(latencies, 0.5),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "streams_done": streams_done,
        "seconds": round(seconds, 1),
        "fds_after": fds,
        "rss_after_mb": round(await _settled_rss_mb(pid), 1),
    }


async def sse_peak_round(base_url: str, pid: int, requests: int, idle_fds: int) -> dict[str, Any]:
    """``requests`` SSE streams of a short text at once; each must end with ``event: done`` or a refusal."""
    latencies: list[float] = []
    counts = {"failed": 0, "refused": 0}

    async def one(http: httpx.AsyncClient) -> None:
        sent = time.perf_counter()
        try:
            response = await http.get("/v1/tts/stream-sse", params={"text": "Peak."})
        except httpx.HTTPError:
            counts["failed"] += 1
            return
        if response.status_code == 200 and "event: done" in response.text:
            latencies.append(time.perf_counter() - sent)
        elif response.status_code in (429, 503):
            counts["refused"] += 1  # overload or the connection cap: an answer, not a failure
        else:
            counts["failed"] += 1

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http,
        trio.open_nursery() as nursery,
    ):
        for _ in range(requests):
            nursery.start_soon(one, http)
    seconds = time.perf_counter() - started
    fds = await _settled(pid, idle_fds, within=60)
    return {
        "kind": "sse",
        "size": requests,
        "streams": 0,
        "handshake_failures": counts["failed"],
        "pongs": len(latencies),
        "pong_failures": counts["refused"],
        "p50_ms": _percentile_ms(latencies, 0.5),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "streams_done": len(latencies),
        "seconds": round(seconds, 1),
        "fds_after": fds,
        "rss_after_mb": round(await _settled_rss_mb(pid), 1),
    }


async def peaks(
    base_url: str, pid: int, *, rounds: int, sockets: int, streams: int, sse_rounds: int, sse: int, settle: float
) -> dict[str, Any]:
    """Peak-and-soak: WebSocket rounds, then SSE rounds, then RSS after ``settle`` quiet seconds vs idle."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for _ in range(20):  # warm up: engine, encoders, caches
            await http.post("/v1/tts/generate", json={"text": "Warm up."})
    await trio.sleep(1.0)
    idle_fds, idle_rss = open_fds(pid), process_rss_mb(pid)
    rows = [await ws_peak_round(base_url, pid, sockets, streams, idle_fds) for _ in range(rounds)]
    rows += [await sse_peak_round(base_url, pid, sse, idle_fds) for _ in range(sse_rounds)]
    await trio.sleep(settle)
    return {
        "idle_rss_mb": round(idle_rss, 1),
        "idle_fds": idle_fds,
        "rounds": rows,
        "settle_s": settle,
        "rss_settled_mb": round(process_rss_mb(pid), 1),
        "fds_settled": open_fds(pid),
    }


def peaks_table(result: dict[str, Any]) -> str:
    """The peak rounds as a Markdown table (README-ready), then the idle and settled RSS."""
    header = (
        "| round | kind | size | streams | failed (ws: handshakes) | answered | p50 ms | p99 ms | s | fds after "
        "| RSS after MB |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for number, row in enumerate(result["rounds"], 1):
        answered = f"{row['pongs']}/{row['size']}"
        cells = [number, row["kind"], row["size"], row["streams"], row["handshake_failures"], answered]
        cells += [row["p50_ms"], row["p99_ms"], row["seconds"], row["fds_after"], row["rss_after_mb"]]
        lines.append("| " + " | ".join("-" if cell is None else str(cell) for cell in cells) + " |")
    lines.append(
        f"\nidle RSS {result['idle_rss_mb']} MB ({result['idle_fds']} fds); "
        f"{result['settle_s']:g} s after the last round {result['rss_settled_mb']} MB ({result['fds_settled']} fds)"
    )
    return "\n".join(lines)


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


@attrs.frozen
class Sizes:
    sockets: int = 1000
    streams: int = 20
    #: Seconds between one socket's pings in the connections scenario (a keep-alive's pace).
    ping_interval: float = 1.0
    soak_requests: int = 5000
    cycles: int = 100
    peak_rounds: int = 5
    peak_sockets: int = 3000
    peak_streams: int = 20
    #: The cap scenario: connections held open, then handshakes and requests above the cap at once.
    cap: int = 200
    cap_extra: int = 300
    sse_rounds: int = 2
    peak_sse: int = 500
    settle: float = 60.0


QUICK = Sizes(
    sockets=200, streams=10, ping_interval=0.2, soak_requests=1500, cycles=40, peak_rounds=2, peak_sockets=300,
    peak_streams=4, cap=50, cap_extra=100, sse_rounds=1, peak_sse=100, settle=10.0,
)  # fmt: skip


async def run(sizes: Sizes, extra: list[str] | None = None, scenarios: frozenset[str] = SCENARIOS) -> dict[str, Any]:
    port = free_port()
    server = start_server(port, extra)
    base_url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    try:
        await wait_ready(base_url)
        if "connections" in scenarios:
            results["connections"] = await connections(
                base_url, sizes.sockets, sizes.streams, pings=5, interval=sizes.ping_interval
            )
        if "soak" in scenarios:
            results["soak"] = await soak(base_url, server.pid, sizes.soak_requests, concurrency=8)
        if "disconnects" in scenarios:
            results["disconnects"] = await disconnects(base_url, sizes.cycles)
        if "cap" in scenarios:
            results["cap"] = await cap_refusals(sizes.cap, sizes.cap_extra, sizes.cap_extra)
        if "peaks" in scenarios:
            results["peaks"] = await peaks(
                base_url,
                server.pid,
                rounds=sizes.peak_rounds,
                sockets=sizes.peak_sockets,
                streams=sizes.peak_streams,
                sse_rounds=sizes.sse_rounds,
                sse=sizes.peak_sse,
                settle=sizes.settle,
            )
        return results
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description="Load and soak runs (loopback only, bounded).")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    defaults = Sizes()
    for field in attrs.fields(Sizes):
        kind = float if field.type in (float, "float") else int
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=None)
    parser.add_argument("--config", type=Path, help="a hypercorn.toml for the server (tts-trio serve --config)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only these scenarios")
    args = parser.parse_args()
    base = QUICK if args.quick else defaults
    given = {f.name: getattr(args, f.name) for f in attrs.fields(Sizes) if getattr(args, f.name) is not None}
    sizes = attrs.evolve(base, **given)
    raise_fd_limit()
    extra = ["--config", str(args.config)] if args.config else None
    results = trio.run(run, sizes, extra, frozenset(args.only or SCENARIOS))
    print(json.dumps(results, indent=2))
    if "peaks" in results:
        print()
        print(peaks_table(results["peaks"]))


if __name__ == "__main__":
    main()
