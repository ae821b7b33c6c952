"""Benchmark: the server against raw espeak-ng on the same texts, in one run.

Starts ``tts-trio serve`` on a free loopback port, measures

* time to first audio (SSE and WebSocket) on a 10-sentence paragraph and on
  a ~9,000-character text,
* POST /v1/tts/generate time for the paragraph,
* WebSocket stop -> ``stopped`` latency and audio bytes after it,
* throughput with 1, 2 and 8 concurrent SSE streams (chunk_size 4096) and
  the slowest first audio among the 8,
* the same SSE streams driven by ``h2load`` (a C client, so the client's
  own CPU does not cap the figure): 1, 2 and 8 at a time over HTTP/1.1
  (one connection each) and over h2c (all on one connection),
* time to first audio over HTTP/2 (h2c, one connection),
* idle memory of the server and its engine workers,
* SIGTERM with 8 SSE streams running: time to exit, the exit code, and how
  each stream ended (``done``, a ``shutting_down`` error event, or cut),

and, as the baseline, raw ``espeak-ng --stdout`` for the first sentence, the
paragraph, and paragraphs with 1, 2 and 8 processes in flight. Prints a
table (with the targets of the core issue) and writes JSON next to it.

Usage: ``python bench/bench.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from load import H2LOAD_MISSING, h2load_throughput
from trio_websocket import open_websocket_url

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog near the river bank. "
    "Dr. Smith arrived at 3.30 p.m. and greeted everyone in the hall. "
    "Is this the real life, or is it just fantasy? "
    "Caught in a landslide, there is no escape from reality. "
    "Open your eyes and look up to the skies and see. "
    "The weather today is sunny with a light breeze from the west. "
    "Please remember to bring your umbrella tomorrow, just in case. "
    "Our meeting starts at nine o'clock sharp in room four. "
    "She sells sea shells by the sea shore every single summer. "
    "Thank you for listening, and have a wonderful day!"
)
FIRST_SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
LONG_TEXT = " ".join([PARAGRAPH] * 15)
#: Less than one paragraph's SSE body (~1.8 MB at 22050 Hz): a stream that got fewer bytes was cut.
PARAGRAPH_SSE_BYTES = 1_300_000


# -- baseline: raw espeak-ng ------------------------------------------------
def espeak_once(text: str) -> float:
    started = time.perf_counter()
    subprocess.run(["espeak-ng", "--stdout", text], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def espeak_throughput(in_flight: int, total: int) -> float:
    """Paragraphs per second with ``in_flight`` espeak-ng processes running at a time."""
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    launched = 0
    while launched < total or running:
        while launched < total and len(running) < in_flight:
            running.append(subprocess.Popen(["espeak-ng", "--stdout", PARAGRAPH], stdout=subprocess.DEVNULL))
            launched += 1
        running[0].wait()
        running = [process for process in running if process.poll() is None]
    return total / (time.perf_counter() - started)


# -- the server ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def uncached_env() -> dict[str, str]:
    """The server's environment in a benchmark: the phrase cache off.

    The benchmarks repeat the same texts; with the cache on, every repeat
    would be a replay from memory, measured against a raw engine that
    synthesizes each time. ``bench/cache_bench.py`` measures the cache itself.
    """
    return {**os.environ, "TTS_CACHE_BYTES": "0"}


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("tts-trio")), "serve", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=uncached_env())


async def sse_first_audio(http: httpx.AsyncClient, text: str, chunk_size: int = 4096) -> tuple[float, float]:
    """(time to first audio event, time to done) for one SSE stream."""
    started = time.perf_counter()
    first = None
    tail = b""
    async with http.stream("GET", "/v1/tts/stream-sse", params={"text": text, "chunk_size": chunk_size}) as response:
        response.raise_for_status()
        async for data in response.aiter_raw():
            if first is None and b"event: audio" in tail + data:
                first = time.perf_counter() - started
            tail = (tail + data)[-64:]
    assert b"event: done" in tail, "stream did not end with done"
    assert first is not None
    return first, time.perf_counter() - started


async def ws_first_audio(url: str, text: str, repeats: int) -> list[float]:
    results = []
    async with open_websocket_url(url, max_message_size=1 << 24) as ws:
        for _ in range(repeats):
            started = time.perf_counter()
            await ws.send_message(json.dumps({"action": "generate", "text": text}))
            first = None
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    if first is None:
                        first = time.perf_counter() - started
                        await ws.send_message(json.dumps({"action": "stop"}))
                elif json.loads(message)["type"] in ("done", "stopped"):
                    break
            assert first is not None
            results.append(first)
    return results


async def ws_stop(url: str, repeats: int) -> tuple[list[float], int]:
    """Stop -> stopped latencies, and audio bytes received after any ``stopped``."""
    latencies = []
    late_bytes = 0
    async with open_websocket_url(url, max_message_size=1 << 24) as ws:
        for _ in range(repeats):
            await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT}))
            stop_sent = None
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes) and stop_sent is None:
                    stop_sent = time.perf_counter()
                    await ws.send_message(json.dumps({"action": "stop"}))
                elif isinstance(message, str) and json.loads(message)["type"] == "stopped":
                    assert stop_sent is not None
                    latencies.append(time.perf_counter() - stop_sent)
                    break
            with trio.move_on_after(0.2):
                while True:
                    message = await ws.get_message()
                    if isinstance(message, bytes):
                        late_bytes += len(message)
    return latencies, late_bytes


async def throughput(base_url: str, streams: int, per_stream: int) -> tuple[float, float]:
    """(paragraphs per second, slowest first audio of the first wave) for concurrent SSE streams."""
    firsts: list[float] = []
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        await sse_first_audio(http, "Warm up.")
        start_line = trio.Event()

        async def one() -> None:
            await start_line.wait()
            for index in range(per_stream):
                first, _ = await sse_first_audio(http, PARAGRAPH)
                if index == 0:
                    firsts.append(first)

        async with trio.open_nursery() as nursery:
            for _ in range(streams):
                nursery.start_soon(one)
            await trio.sleep(0.05)
            started = time.perf_counter()
            start_line.set()
        elapsed = time.perf_counter() - started
    return streams * per_stream / elapsed, max(firsts)


async def sigterm_under_load(server: subprocess.Popen[bytes], base_url: str, streams: int) -> dict[str, Any]:
    """SIGTERM once ``streams`` SSE streams of LONG_TEXT have audio flowing; how long to exit, how each ended."""
    endings: dict[str, int] = {}

    async def one(http: httpx.AsyncClient, started: trio.Event) -> None:
        ending = "cut"
        try:
            async with http.stream("GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT}) as response:
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                        started.set()
                        if event == "done":
                            ending = "done"
                    elif line.startswith("data: ") and event == "error":
                        ending = json.loads(line[6:])["code"]
        except httpx.HTTPError:
            ending = "cut"
        finally:
            started.set()
            endings[ending] = endings.get(ending, 0) + 1

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http, trio.open_nursery() as nursery:
        begun = [trio.Event() for _ in range(streams)]
        for event in begun:
            nursery.start_soon(one, http, event)
        for event in begun:
            await event.wait()
        started = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        code = await trio.to_thread.run_sync(server.wait, 30)
        elapsed = time.perf_counter() - started
    return {"exit_s": elapsed, "exit_code": code, "endings": endings}


async def median_of(repeats: int, measure: Callable[[], Awaitable[float]]) -> float:
    return statistics.median([await measure() for _ in range(repeats)])


async def run(quick: bool) -> dict[str, Any]:
    repeats = 5 if quick else 20
    per_stream = 2 if quick else 6
    results: dict[str, Any] = {}

    results["espeak_first_sentence_s"] = statistics.median(espeak_once(FIRST_SENTENCE) for _ in range(repeats))
    results["espeak_paragraph_s"] = statistics.median(espeak_once(PARAGRAPH) for _ in range(repeats))
    results["espeak_long_s"] = statistics.median(espeak_once(LONG_TEXT) for _ in range(max(3, repeats // 4)))
    for n in (1, 2, 8):
        results[f"espeak_throughput_{n}"] = espeak_throughput(n, 16 * n if not quick else 4 * n)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            with trio.fail_after(30):
                while True:
                    try:
                        health = (await http.get("/health")).json()
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
            results["slots"] = health["slots"]["total"]
            await trio.sleep(0.5)
            results["idle_rss_server_mb"] = rss_mb(server.pid)
            results["idle_rss_workers_mb"] = sum(rss_mb(child) for child in children(server.pid))

            for _ in range(3):
                await sse_first_audio(http, PARAGRAPH)  # warm up connection and workers

            async def sse_ttfa(text: str) -> float:
                return (await sse_first_audio(http, text))[0]

            results["sse_ttfa_paragraph_s"] = await median_of(repeats, lambda: sse_ttfa(PARAGRAPH))
            results["sse_ttfa_long_s"] = await median_of(repeats, lambda: sse_ttfa(LONG_TEXT))

            async def post() -> float:
                started = time.perf_counter()
                response = await http.post("/v1/tts/generate", json={"text": PARAGRAPH})
                response.raise_for_status()
                return time.perf_counter() - started

            results["post_paragraph_s"] = await median_of(repeats, post)

        async with httpx.AsyncClient(base_url=base_url, timeout=60, http1=False, http2=True) as h2:
            await sse_first_audio(h2, PARAGRAPH)  # one connection, kept: every stream is multiplexed on it

            async def h2_ttfa() -> float:
                return (await sse_first_audio(h2, PARAGRAPH))[0]

            results["h2_sse_ttfa_paragraph_s"] = await median_of(repeats, h2_ttfa)

        ws_url = base_url.replace("http", "ws") + "/v1/tts/stream"
        results["ws_ttfa_paragraph_s"] = statistics.median(await ws_first_audio(ws_url, PARAGRAPH, repeats))
        results["ws_ttfa_long_s"] = statistics.median(await ws_first_audio(ws_url, LONG_TEXT, repeats))
        latencies, late = await ws_stop(ws_url, repeats)
        results["ws_stop_s"] = statistics.median(latencies)
        results["ws_stop_max_s"] = max(latencies)
        results["ws_audio_bytes_after_stopped"] = late
        for n in (1, 2, 8):
            rate, slowest = await throughput(base_url, n, per_stream)
            results[f"server_throughput_{n}"] = rate
            results[f"server_slowest_first_audio_{n}_s"] = slowest
        if shutil.which("h2load"):
            h2load_total = 4 if quick else 12
            await trio.to_thread.run_sync(
                partial(h2load_throughput, base_url, PARAGRAPH, 2, 8, h1=True, min_bytes=PARAGRAPH_SSE_BYTES)
            )  # warm up
            for protocol, h1 in (("h1", True), ("h2c", False)):
                for n in (1, 2, 8):
                    results[f"h2load_{protocol}_{n}"] = await trio.to_thread.run_sync(
                        partial(
                            h2load_throughput,
                            base_url,
                            PARAGRAPH,
                            n,
                            h2load_total * n,
                            h1=h1,
                            min_bytes=PARAGRAPH_SSE_BYTES,
                        )
                    )
        else:
            print(H2LOAD_MISSING, file=sys.stderr)
        async with httpx.AsyncClient(base_url=base_url) as http:
            health = (await http.get("/health")).json()
        results["slots_in_use_after"] = health["slots"]["in_use"]
        results["sigterm"] = await sigterm_under_load(server, base_url, 8)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            results["server_exit_code"] = server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            results["server_exit_code"] = "killed"
    return results


def table(r: dict[str, Any]) -> str:
    ms = 1000.0
    rows = [
        (
            "TTFA SSE, paragraph",
            f"{r['sse_ttfa_paragraph_s'] * ms:.1f} ms",
            f"espeak-ng first sentence {r['espeak_first_sentence_s'] * ms:.1f} ms",
            f"<= {(r['espeak_first_sentence_s'] + 0.020) * ms:.1f} ms",
            r["sse_ttfa_paragraph_s"] <= r["espeak_first_sentence_s"] + 0.020,
        ),
        (
            "TTFA SSE, 9,000 chars",
            f"{r['sse_ttfa_long_s'] * ms:.1f} ms",
            f"espeak-ng whole text {r['espeak_long_s'] * ms:.0f} ms",
            f"<= paragraph + 10 ms ({(r['sse_ttfa_paragraph_s'] + 0.010) * ms:.1f})",
            r["sse_ttfa_long_s"] <= r["sse_ttfa_paragraph_s"] + 0.010,
        ),
        (
            "TTFA SSE over HTTP/2 (h2c), paragraph",
            f"{r['h2_sse_ttfa_paragraph_s'] * ms:.1f} ms",
            f"espeak-ng first sentence {r['espeak_first_sentence_s'] * ms:.1f} ms",
            f"<= {(r['espeak_first_sentence_s'] + 0.020) * ms:.1f} ms",
            r["h2_sse_ttfa_paragraph_s"] <= r["espeak_first_sentence_s"] + 0.020,
        ),
        (
            "TTFA WebSocket, paragraph",
            f"{r['ws_ttfa_paragraph_s'] * ms:.1f} ms",
            f"espeak-ng first sentence {r['espeak_first_sentence_s'] * ms:.1f} ms",
            f"<= {(r['espeak_first_sentence_s'] + 0.020) * ms:.1f} ms",
            r["ws_ttfa_paragraph_s"] <= r["espeak_first_sentence_s"] + 0.020,
        ),
        (
            "TTFA WebSocket, 9,000 chars",
            f"{r['ws_ttfa_long_s'] * ms:.1f} ms",
            "",
            f"<= paragraph + 10 ms ({(r['ws_ttfa_paragraph_s'] + 0.010) * ms:.1f})",
            r["ws_ttfa_long_s"] <= r["ws_ttfa_paragraph_s"] + 0.010,
        ),
        (
            "POST generate, paragraph",
            f"{r['post_paragraph_s'] * ms:.1f} ms",
            f"espeak-ng paragraph {r['espeak_paragraph_s'] * ms:.1f} ms",
            f"<= {2 * r['espeak_paragraph_s'] * ms:.1f} ms",
            r["post_paragraph_s"] <= 2 * r["espeak_paragraph_s"],
        ),
        (
            "WS stop -> stopped (median / max)",
            f"{r['ws_stop_s'] * ms:.1f} / {r['ws_stop_max_s'] * ms:.1f} ms",
            "",
            "<= 50 ms",
            r["ws_stop_max_s"] <= 0.050,
        ),
        (
            "audio bytes after stopped",
            str(r["ws_audio_bytes_after_stopped"]),
            "",
            "0",
            r["ws_audio_bytes_after_stopped"] == 0,
        ),
    ]
    for n in (1, 2, 8):
        target = 0.25 * r["espeak_throughput_8"] if n == 8 else None
        rows.append(
            (
                f"throughput, {n} SSE stream(s)",
                f"{r[f'server_throughput_{n}']:.1f} paragraphs/s",
                f"espeak-ng {n} in flight {r[f'espeak_throughput_{n}']:.1f}/s",
                f">= {target:.1f}/s (25% of 8 in flight)" if target else "",
                r[f"server_throughput_{n}"] >= target if target else None,
            )
        )
    rows.extend(h2load_rows(r))
    rows.append(
        (
            "slowest first audio of 8 streams",
            f"{r['server_slowest_first_audio_8_s'] * ms:.1f} ms",
            "",
            "<= 150 ms",
            r["server_slowest_first_audio_8_s"] <= 0.150,
        )
    )
    total_rss = r["idle_rss_server_mb"] + r["idle_rss_workers_mb"]
    rows.append(
        (
            "idle memory (server + workers)",
            f"{total_rss:.0f} MB ({r['idle_rss_server_mb']:.0f} + {r['idle_rss_workers_mb']:.0f})",
            "",
            "<= 150 MB",
            total_rss <= 150,
        )
    )
    rows.append(("slots in use after the run", str(r["slots_in_use_after"]), "", "0", r["slots_in_use_after"] == 0))
    rows.append(("exit code on SIGTERM", str(r["server_exit_code"]), "", "0", r["server_exit_code"] == 0))
    sigterm = r["sigterm"]
    endings = sigterm["endings"]
    final = endings.get("done", 0) + endings.get("shutting_down", 0)
    rows.append(
        (
            "SIGTERM with 8 streams: exit after",
            f"{sigterm['exit_s']:.2f} s (exit {sigterm['exit_code']})",
            "",
            "<= graceful timeout (5 s), exit 0",
            sigterm["exit_s"] <= 5.0 and sigterm["exit_code"] == 0,
        )
    )
    rows.append(
        (
            "SIGTERM with 8 streams: ended with a final event",
            f"{final}/8 ({', '.join(f'{k} {v}' for k, v in sorted(endings.items()))})",
            "",
            "8/8",
            final == 8,
        )
    )
    lines = ["| measure | tts-trio | raw espeak-ng (same run) | target | met |", "|---|---|---|---|---|"]
    for name, value, base, target, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        lines.append(f"| {name} | {value} | {base} | {target} | {mark} |")
    return "\n".join(lines)


def h2load_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, bool | None]]:
    """h2load throughput at 1, 2, 8 streams per protocol, with raw espeak-ng at as many in flight.

    Targets: 8 streams deliver at least what 2 do (more streams never cost
    throughput) and at least 85% of raw espeak-ng with 8 processes in flight.
    """
    if "h2load_h1_1" not in r:
        return [("throughput, h2load", "not run", H2LOAD_MISSING, "", None)]
    rows: list[tuple[str, str, str, str, bool | None]] = []
    for protocol, label in (("h1", "HTTP/1.1, a connection each"), ("h2c", "h2c, one connection")):
        two = r[f"h2load_{protocol}_2"]["rate"]
        for n in (1, 2, 8):
            result = r[f"h2load_{protocol}_{n}"]
            target, met = "", None
            if n == 8:
                floor = max(two, 0.85 * r["espeak_throughput_8"])
                target = f">= 2 streams ({two:.1f}) and >= 85% of 8 in flight ({0.85 * r['espeak_throughput_8']:.1f})"
                met = result["rate"] >= floor
            if not result["ok"]:
                met = False
            rows.append(
                (
                    f"throughput, h2load, {n} SSE stream(s), {label}",
                    f"{result['rate']:.1f} paragraphs/s" + ("" if result["ok"] else " (some failed)"),
                    f"espeak-ng {n} in flight {r[f'espeak_throughput_{n}']:.1f}/s",
                    target,
                    met,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    results = trio.run(run, args.quick)
    print(f"machine: {os.cpu_count()} cores, slots {results['slots']}, {'quick' if args.quick else 'full'} run")
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
