"""Benchmark: the piper engine behind the server against raw Piper in process, on the same voice and text.

Why both: the server's figures only mean something next to what the voice
itself can do on the same machine. Raw Piper runs in this process, one
caller per thread, in two set-ups:

* ``1 thread``: one session with one intra-op thread shared by the callers,
  which is how the server runs a voice on the CPU;
* ``default``: ``PiperVoice.load``'s own session (onnxruntime's default: one
  thread per core), what a script using Piper directly gets.

The server (``tts-trio serve --engine piper``, slots = CPU cores) is driven
over SSE and WebSocket. For 1, 2 and 8 concurrent requests of a
10-sentence paragraph it reports the median time to first audio, the slowest
first audio, and throughput (seconds of audio produced per second of wall
time, all requests together); then WebSocket stop → ``stopped`` latency and
the server's memory (RSS now, and its peak).

Peers (``--peers``): ``python -m piper.http_server`` (whole WAV per request)
and ``wyoming-piper`` (driven by the ``wyoming`` client), each run from a
separate virtual environment given with ``--peer-venv``; they are never
installed into the project's. A peer that is not there is reported as such.

Usage: ``python bench/piper_bench.py [--quick] [--json PATH] [--peers --peer-venv DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

# The same paragraph as the espeak-ng benchmark, so the two tables compare.
from bench import PARAGRAPH, uncached_env

#: --quick: three sentences instead of ten, for a look on a busy machine.
QUICK_TEXT = " ".join(PARAGRAPH.split(". ")[:3]) + "."
CONCURRENCY = (1, 2, 8)
WAV_HEADER = 44


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) of a process in MB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def summary(first: list[float], audio_s: float, wall: float) -> dict[str, float]:
    return {
        "first_audio_median_s": statistics.median(first),
        "first_audio_max_s": max(first),
        "audio_s_per_s": audio_s / wall if wall else 0.0,
    }


# -- raw Piper, in this process ------------------------------------------------------------------


def load_raw(mode: str) -> Any:
    """The joe voice as piper's ``PiperVoice``: ``1 thread`` (the server's session options) or ``default``."""
    import onnxruntime  # type: ignore[import-untyped]
    from piper import PiperConfig, PiperVoice

    from tts_trio.engines.piper_voices import discover_voices

    files = discover_voices()["en_US-joe-medium"]
    if mode == "default":
        return PiperVoice.load(files.model_path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(files.model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=PiperConfig.from_dict(files.read_config()))


def raw_run(voice: Any, text: str, callers: int) -> dict[str, float]:
    first: list[float] = []
    audio = [0.0]
    lock = threading.Lock()
    started = time.perf_counter()

    def caller() -> None:
        seen_first = False
        for chunk in voice.synthesize(text):
            with lock:
                if not seen_first:
                    first.append(time.perf_counter() - started)
                    seen_first = True
                audio[0] += len(chunk.audio_float_array) / chunk.sample_rate

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(first, audio[0], time.perf_counter() - started)


# -- the server ------------------------------------------------------------------------------------


async def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        for _ in range(1200):
            if process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.1)  # polling a process that has no event to await
    raise RuntimeError("the server did not become ready")


async def sse_run(base_url: str, text: str, streams: int) -> dict[str, float]:
    first: list[float] = []
    audio = [0.0]
    started = trio.current_time()
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:

        async def one() -> None:
            seen_first = False
            params = {"text": text, "output_format": "pcm"}
            async with http.stream("GET", "/v1/tts/stream-sse", params=params) as response:
                async for line in response.aiter_lines():
                    if line.startswith("event: audio") and not seen_first:
                        first.append(trio.current_time() - started)
                        seen_first = True
                    elif line.startswith("data:") and '"audio_duration"' in line:
                        audio[0] += float(json.loads(line[5:])["audio_duration"])

        async with trio.open_nursery() as nursery:
            for _ in range(streams):
                nursery.start_soon(one)
    return summary(first, audio[0], trio.current_time() - started)


async def ws_run(ws_url: str, text: str, streams: int, rate: int) -> dict[str, float]:
    first: list[float] = []
    audio = [0.0]
    started = trio.current_time()

    async def one() -> None:
        async with open_websocket_url(ws_url) as ws:
            await ws.send_message(json.dumps({"action": "generate", "text": text}))
            seen_first = False
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    if not seen_first:
                        first.append(trio.current_time() - started)
                        seen_first = True
                    audio[0] += (len(message) - WAV_HEADER) / 2 / rate  # each message is a whole WAV file
                elif json.loads(message)["type"] in ("done", "error"):
                    return

    async with trio.open_nursery() as nursery:
        for _ in range(streams):
            nursery.start_soon(one)
    return summary(first, audio[0], trio.current_time() - started)


async def ws_stop_latency(ws_url: str, text: str, repeats: int) -> list[float]:
    latencies = []
    async with open_websocket_url(ws_url) as ws:
        for _ in range(repeats):
            await ws.send_message(json.dumps({"action": "generate", "text": text}))
            while not isinstance(await ws.get_message(), bytes):
                pass
            sent = trio.current_time()
            await ws.send_message(json.dumps({"action": "stop"}))
            while True:
                message = await ws.get_message()
                if isinstance(message, str) and json.loads(message)["type"] == "stopped":
                    latencies.append(trio.current_time() - sent)
                    break
    return latencies


async def server_bench(text: str, repeats: int) -> dict[str, Any]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("tts-trio")), "serve", "--engine", "piper", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=uncached_env())  # noqa: ASYNC220
    try:
        load_started = trio.current_time()
        await wait_ready(base_url, process)
        result: dict[str, Any] = {"start_s": trio.current_time() - load_started}
        async with httpx.AsyncClient(base_url=base_url) as http:
            health = (await http.get("/health")).json()
        rate = int(health["audio"]["sample_rate"])
        result["slots"] = health["slots"]["total"]
        result["rss_idle_mb"] = rss_mb(process.pid)[0]
        ws_url = base_url.replace("http://", "ws://") + "/v1/tts/stream"
        for streams in CONCURRENCY:
            result[f"sse_{streams}"] = await sse_run(base_url, text, streams)
            result[f"ws_{streams}"] = await ws_run(ws_url, text, streams, rate)
        result["stop_s"] = await ws_stop_latency(ws_url, PARAGRAPH, repeats)
        result["rss_mb"], result["rss_peak_mb"] = rss_mb(process.pid)
        return result
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- peers -------------------------------------------------------------------------------------------


def _http_peer_run(url: str, text: str, callers: int) -> dict[str, float]:
    first: list[float] = []
    audio = [0.0]
    started = time.perf_counter()

    def one() -> None:
        wav = httpx.post(url, json={"text": text}, timeout=600).content
        first.append(time.perf_counter() - started)  # the whole file is the first audio
        audio[0] += (len(wav) - WAV_HEADER) / 2 / 22050

    threads = [threading.Thread(target=one) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(first, audio[0], time.perf_counter() - started)


def http_server_peer(venv: Path, text: str) -> dict[str, Any]:
    """``python -m piper.http_server`` from ``venv``: one whole WAV per request, 1, 2 and 8 at a time."""
    python = str(venv / "bin" / "python")
    check = subprocess.run([python, "-c", "import piper.http_server, flask"], capture_output=True, check=False)
    if check.returncode != 0:
        return {"missing": "piper.http_server (piper-tts and flask) is not installed in the peer venv"}
    from tts_trio.engines.piper_voices import discover_voices

    model = discover_voices()["en_US-joe-medium"].model_path
    port = free_port()
    command = [python, "-m", "piper.http_server", "-m", str(model), "--port", str(port), "--host", "127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=uncached_env())
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(1200):
            try:
                httpx.get(f"{url}/info", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)  # polling a process that has no event to await
        result: dict[str, Any] = {}
        for callers in CONCURRENCY:
            result[f"http_{callers}"] = _http_peer_run(f"{url}/synthesize", text, callers)
        result["rss_mb"], result["rss_peak_mb"] = rss_mb(process.pid)
        return result
    finally:
        process.terminate()
        process.wait(timeout=30)


#: Runs under the peer venv's Python (where ``wyoming`` is): N concurrent ``Synthesize`` requests, as JSON.
WYOMING_DRIVER = """
import asyncio, json, sys, time
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

async def one(port, text, started, first, audio):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text).event())
        seen = False
        while True:
            event = await client.read_event()
            if event is None or AudioStop.is_type(event.type):
                return
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                if not seen:
                    first.append(time.perf_counter() - started)
                    seen = True
                audio[0] += len(chunk.audio) / (chunk.width * chunk.channels * chunk.rate)

async def main(port, text, count):
    first, audio, started = [], [0.0], time.perf_counter()
    await asyncio.gather(*(one(port, text, started, first, audio) for _ in range(count)))
    print(json.dumps({"first": first, "audio": audio[0], "wall": time.perf_counter() - started}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


def wyoming_peer(venv: Path, text: str) -> dict[str, Any]:
    """``wyoming-piper`` from ``venv`` on a TCP port, driven by the ``wyoming`` client (in the same venv)."""
    python = str(venv / "bin" / "python")
    check = subprocess.run([python, "-c", "import wyoming_piper, wyoming"], capture_output=True, check=False)
    if check.returncode != 0:
        return {"missing": "wyoming-piper and wyoming are not installed in the peer venv"}
    from tts_trio.engines.piper_voices import discover_voices

    data_dir = discover_voices()["en_US-joe-medium"].model_path.parent
    port = free_port()
    command = [python, "-m", "wyoming_piper", "--voice", "en_US-joe-medium", "--data-dir", str(data_dir)]
    command += ["--uri", f"tcp://127.0.0.1:{port}", "--local-files-only"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=uncached_env())
    try:
        for _ in range(1200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)  # polling a process that has no event to await
        result: dict[str, Any] = {}
        for callers in CONCURRENCY:
            driver = [python, "-c", WYOMING_DRIVER, str(port), text, str(callers)]
            run = subprocess.run(driver, capture_output=True, text=True, check=True, timeout=900)
            figures = json.loads(run.stdout)
            result[f"wyoming_{callers}"] = summary(figures["first"], figures["audio"], figures["wall"])
        result["rss_mb"], result["rss_peak_mb"] = rss_mb(process.pid)
        return result
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- the table ---------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rows = [f"{'':28} {'first audio (median)':>21} {'slowest first':>14} {'audio s / s':>12}"]

    def add(label: str, figures: dict[str, float]) -> None:
        rows.append(
            f"{label:28} {figures['first_audio_median_s']:>20.2f}s {figures['first_audio_max_s']:>13.2f}s"
            f" {figures['audio_s_per_s']:>12.2f}"
        )

    for mode in ("1 thread", "default"):
        for callers in CONCURRENCY:
            add(f"raw piper, {mode}, {callers}", results["raw"][mode][callers])
    server = results["server"]
    for route in ("sse", "ws"):
        for streams in CONCURRENCY:
            add(f"server {route}, {streams}", server[f"{route}_{streams}"])
    for name, peer in results.get("peers", {}).items():
        if "missing" in peer:
            rows.append(f"{name:28} not run: {peer['missing']}")
            continue
        for key, figures in peer.items():
            if isinstance(figures, dict):
                add(f"{name}, {key.split('_')[-1]}", figures)
    stops = server["stop_s"]
    stop_ms = sorted(value * 1000 for value in stops)
    rows.append(
        f"server WebSocket stop → stopped: median {statistics.median(stop_ms):.0f} ms, max {stop_ms[-1]:.0f} ms"
    )
    rows.append(
        f"server: {server['slots']} slots, ready in {server['start_s']:.1f} s, "
        f"RSS idle {server['rss_idle_mb']:.0f} MB, after the runs {server['rss_mb']:.0f} MB "
        f"(peak {server['rss_peak_mb']:.0f} MB)"
    )
    raw_rss = results["raw"]["rss_mb"]
    rows.append(f"raw piper process: RSS {raw_rss[0]:.0f} MB (peak {raw_rss[1]:.0f} MB) with both sessions loaded")
    rows.append(f"cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="three sentences instead of ten")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--peers", action="store_true", help="also run piper.http_server and wyoming-piper")
    parser.add_argument("--peer-venv", type=Path, help="the separate venv the peers are installed in")
    args = parser.parse_args()
    text = QUICK_TEXT if args.quick else PARAGRAPH
    results: dict[str, Any] = {"text_chars": len(text), "raw": {}}
    for mode in ("1 thread", "default"):
        voice = load_raw(mode)
        results["raw"][mode] = {callers: raw_run(voice, text, callers) for callers in CONCURRENCY}
    results["raw"]["rss_mb"] = rss_mb(os.getpid())
    results["server"] = trio.run(server_bench, text, 3)
    if args.peers:
        venv = args.peer_venv
        if venv is None or not (venv / "bin" / "python").exists():
            missing = {"missing": "no peer venv given (--peer-venv)"}
            results["peers"] = {"piper.http_server": missing, "wyoming-piper": missing}
        else:
            results["peers"] = {
                "piper.http_server": http_server_peer(venv, text),
                "wyoming-piper": wyoming_peer(venv, text),
            }
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
