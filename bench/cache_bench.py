"""Benchmark: time to first audio from the phrase cache (a hit) against a fresh synthesis (a miss).

Starts ``tts-trio serve`` (the phrase cache on, its default size) on a free
loopback port and measures, for the first sentence and for the 10-sentence
paragraph of ``bench/bench.py``, the time to the first audio of:

* a miss: a text the server has not spoken yet (the same text with a
  round number added as a last sentence, so the first sentence is the same
  work each time), synthesized by espeak-ng;
* a hit: the same text again, after one complete stream put it in the cache.

Each over our WebSocket (``generate``: from sending it to the first binary
message) and over SSE (from sending the request to the first ``audio``
event, connection already open), client side, and the server's own figure
(``time_to_first_audio`` in the stream's ``metrics``). Misses and hits are
measured in turns, so a noisy moment falls on both; figures are medians.
Raw ``espeak-ng --stdout`` on the first sentence is the baseline. The
target: a hit's first audio within 2 ms of the stream's start on the
server (the ``≤ 2 ms`` column); the client's figure adds what every
request costs, hit or miss (the socket, parsing, the Python client).

Usage: ``python bench/cache_bench.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from bench import FIRST_SENTENCE, PARAGRAPH, espeak_once, free_port

#: The target: a hit's median time to first audio, in milliseconds.
TARGET_MS = 2.0


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).with_name("tts-trio")), "serve", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_healthy(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(300):
            try:
                if (await http.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.1)
    raise RuntimeError("the server did not become ready")


async def ws_once(ws: WebSocketConnection, text: str) -> tuple[float, float]:
    """(client, server) seconds to first audio of one complete ``generate``."""
    started = time.perf_counter()
    await ws.send_message(json.dumps({"action": "generate", "text": text, "output_format": "pcm"}))
    first = None
    server = None
    while True:
        message = await ws.get_message()
        if isinstance(message, bytes):
            if first is None:
                first = time.perf_counter() - started
            continue
        decoded = json.loads(message)
        if decoded["type"] == "metrics":
            server = decoded["data"]["time_to_first_audio"]
        elif decoded["type"] == "done":
            break
        elif decoded["type"] == "error":
            raise RuntimeError(f"the server answered {decoded}")
    if first is None or server is None:
        raise RuntimeError("no audio or no metrics")
    return first, float(server)


async def sse_once(http: httpx.AsyncClient, text: str) -> tuple[float, float]:
    """(client, server) seconds to first audio of one complete SSE stream."""
    started = time.perf_counter()
    first = None
    body = b""
    params: dict[str, str | int] = {"text": text, "output_format": "pcm", "chunk_size": 4096}
    async with http.stream("GET", "/v1/tts/stream-sse", params=params) as response:
        response.raise_for_status()
        async for data in response.aiter_raw():
            if first is None and b"event: audio" in body[-32:] + data:
                first = time.perf_counter() - started
            body += data
    marker = body.rindex(b"event: metrics\ndata: ")
    metrics = json.loads(body[marker:].split(b"\n", 2)[1][len(b"data: ") :])
    if first is None:
        raise RuntimeError("no audio event")
    return first, float(metrics["time_to_first_audio"])


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


async def run(quick: bool) -> dict[str, Any]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    rounds = 5 if quick else 25
    texts = {"first sentence": FIRST_SENTENCE, "paragraph": PARAGRAPH}
    samples: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {
        label: {"WS generate": {"miss": [], "hit": []}, "SSE": {"miss": [], "hit": []}} for label in texts
    }
    try:
        await wait_healthy(base_url)
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=60) as http,
            open_websocket_url(f"ws://127.0.0.1:{port}/v1/tts/stream", max_message_size=1 << 24) as ws,
        ):
            for text in texts.values():  # warm-up, and the hits' entries
                await ws_once(ws, text)
                await sse_once(http, text)
            for number in range(rounds):
                for label, text in texts.items():
                    fresh = f"{text} Take {number}."
                    by_protocol = samples[label]
                    by_protocol["WS generate"]["miss"].append(await ws_once(ws, fresh + " Over the socket."))
                    by_protocol["WS generate"]["hit"].append(await ws_once(ws, text))
                    by_protocol["SSE"]["miss"].append(await sse_once(http, fresh + " Over events."))
                    by_protocol["SSE"]["hit"].append(await sse_once(http, text))
            counters = (await http.get("/metrics")).text
    finally:
        server.terminate()
        server.wait(timeout=30)
    baseline = statistics.median(espeak_once(FIRST_SENTENCE) for _ in range(rounds))
    hits = next(line for line in counters.splitlines() if line.startswith("tts_cache_hits_total "))
    return {
        "rounds": rounds,
        "ttfa_ms": {
            label: {
                protocol: {
                    state: {
                        "client": _median_ms([client for client, _ in runs]),
                        "server": _median_ms([server_side for _, server_side in runs]),
                    }
                    for state, runs in by_state.items()
                }
                for protocol, by_state in by_protocol.items()
            }
            for label, by_protocol in samples.items()
        },
        "espeak_first_sentence_ms": round(baseline * 1000, 2),
        "cache_hits": float(hits.split()[1]),
    }


def table(results: dict[str, Any]) -> str:
    rows = [
        "| text | protocol | miss: client (ms) | miss: server (ms) | hit: client (ms) | hit: server (ms) | ≤ 2 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, by_protocol in results["ttfa_ms"].items():
        for protocol, by_state in by_protocol.items():
            miss, hit = by_state["miss"], by_state["hit"]
            verdict = "✓" if hit["server"] <= TARGET_MS else "✗"
            rows.append(
                f"| {label} | {protocol} | {miss['client']:.2f} | {miss['server']:.2f} "
                f"| {hit['client']:.2f} | {hit['server']:.2f} | {verdict} |"
            )
    baseline = results["espeak_first_sentence_ms"]
    rows.append(f"| first sentence | raw espeak-ng, whole sentence | {baseline:.2f} | | | | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/cache.json"))
    args = parser.parse_args()
    results = trio.run(run, args.quick)
    print(
        f"machine: {os.cpu_count()} cores, {results['rounds']} rounds, median time to first audio, "
        f"{results['cache_hits']:.0f} cache hits"
    )
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
