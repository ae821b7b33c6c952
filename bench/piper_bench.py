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
time, all requests together); then, mid-sentence, WebSocket stop →
``stopped``, ``stopped`` → slot free (``/health``'s slots back to 0) and the
audio bytes that arrived after ``stopped``; the server's memory idle, over
500 short requests, and at its peak. Both raw set-ups speak one short
sentence before they are timed, as the server does when it loads a voice, so
neither side pays onnxruntime's first run in the figures.

Every row is the median of three trials (one with ``--quick``), each run
after a second of quiet. The targets table compares the server with the
*best* raw figure of the two set-ups at each concurrency, except the slowest
first audio of 8, which is held to 4 × the one-thread raw first sentence:
on 2 cores eight first sentences cannot take less.

Peers (``--peers``): ``python -m piper.http_server`` (whole WAV per request)
and ``wyoming-piper`` (driven by the ``wyoming`` client), each run from a
separate virtual environment given with ``--peer-venv``; they are never
installed into the project's. A peer that is not there is reported as such.

Usage: ``python bench/piper_bench.py [--quick] [--json PATH] [--peers --peer-venv DIR]``
(``make bench-piper`` makes the peers' virtualenv, ``.venv-peers``, and runs all of it).
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

#: Requests of a short sentence after which the server's RSS must not have grown (the memory target).
REQUESTS_FOR_RSS = 500
#: Trials of every concurrency, raw and server (their median is reported); 1 with --quick.
TRIALS = 3
#: Seconds of quiet before every timed run, raw and server: each starts from an idle process, not in the
#: tail of the run before (whose last sentences, and the server's "was anything running beside another
#: lately" memory for its solo session, would otherwise leak into the next row).
QUIET_BETWEEN_RUNS = 1.0
#: Mid-sentence stops timed per run.
STOP_REPEATS = 10
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


def quiet(run: Any) -> Any:
    """``run`` after :data:`QUIET_BETWEEN_RUNS` seconds of sleep (for the raw runs, which are not async)."""

    def after_quiet(*args: Any) -> Any:
        time.sleep(QUIET_BETWEEN_RUNS)
        return run(*args)

    return after_quiet


def median_of(trials: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over repeated trials: on 2 shared cores one trial swings by 10–15 %."""
    return {key: statistics.median(trial[key] for trial in trials) for key in trials[0]}


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
        voice = PiperVoice.load(files.model_path)
    else:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(files.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        voice = PiperVoice(session=session, config=PiperConfig.from_dict(files.read_config()))
    for _ in voice.synthesize("Ready."):  # the first run of a session is slow; the server's is done at load too
        pass
    return voice


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
    # The client exists before the clock starts: making one (its TLS context) takes ~40 ms, not the server's time.
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        started = trio.current_time()

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


async def ws_stops(base_url: str, ws_url: str, text: str, repeats: int) -> list[dict[str, float]]:
    """Stop a paragraph mid-sentence ``repeats`` times: stop → ``stopped``, ``stopped`` → slots free, stale bytes.

    The slot counts as free when ``/health`` reports 0 slots in use; stale
    bytes are the audio that reaches the socket after ``stopped`` (read until
    the pong of a ping sent once the slot is free).
    """
    results = []
    async with open_websocket_url(ws_url) as ws, httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for _ in range(repeats):
            await ws.send_message(json.dumps({"action": "generate", "text": text}))
            while not isinstance(await ws.get_message(), bytes):
                pass
            await trio.sleep(0.05)  # into the next sentence's model run, not just after one
            sent = trio.current_time()
            await ws.send_message(json.dumps({"action": "stop"}))
            stale = 0
            while True:
                message = await ws.get_message()
                if isinstance(message, str) and json.loads(message)["type"] == "stopped":
                    stopped = trio.current_time()
                    break
            while (await http.get("/health")).json()["slots"]["in_use"] != 0:
                pass  # each poll is a real request (~2 ms): the resolution of this figure
            free = trio.current_time()
            await ws.send_message(json.dumps({"action": "ping"}))
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    stale += len(message)
                elif json.loads(message)["type"] == "pong":
                    break
            results.append({"stopped_s": stopped - sent, "slot_free_s": free - stopped, "stale_bytes": stale})
    return results


async def generate(http: httpx.AsyncClient, text: str) -> None:
    """One POST generate that must succeed: a refused request would shrink the work measured."""
    (await http.post("/v1/tts/generate", json={"text": text})).raise_for_status()


async def rss_over_requests(base_url: str, pid: int, count: int) -> dict[str, Any]:
    """RSS after a warm-up of 100 POST generate requests of one sentence, then after each 100 of ``count`` more.

    The warm-up is where the process first touches the buffers a sentence of
    each size needs (measured: +60–70 MB over idle, then level); what is
    judged is the change after it. glibc's heap rises and falls by tens of MB
    between samples without a trend, so the series is printed with the figure.
    """
    text = PARAGRAPH.split(". ")[1] + "."
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:

        async def requests(n: int) -> None:
            for start in range(0, n, 8):
                async with trio.open_nursery() as nursery:
                    for _ in range(min(8, n - start)):
                        nursery.start_soon(generate, http, text)

        await requests(100)
        series = [rss_mb(pid)[0]]
        for done in range(0, count, 100):
            await requests(min(100, count - done))
            series.append(rss_mb(pid)[0])
    return {"requests": count, "rss_before_mb": series[0], "rss_after_mb": series[-1], "series_mb": series}


async def server_bench(text: str, repeats: int, requests: int, trials: int) -> dict[str, Any]:
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
        async with httpx.AsyncClient(base_url=base_url) as http:
            # One unheard request, as raw Piper speaks one sentence before it is timed: the process's
            # first request (thread pool, first buffers) is not what a figure here should be about.
            await http.post("/v1/tts/generate", json={"text": "Ready."})
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(trials):
            for streams in CONCURRENCY:
                await trio.sleep(QUIET_BETWEEN_RUNS)
                runs.setdefault(f"sse_{streams}", []).append(await sse_run(base_url, text, streams))
                await trio.sleep(QUIET_BETWEEN_RUNS)
                runs.setdefault(f"ws_{streams}", []).append(await ws_run(ws_url, text, streams, rate))
        result.update({key: median_of(values) for key, values in runs.items()})
        result["stops"] = await ws_stops(base_url, ws_url, PARAGRAPH, repeats)
        result["requests_rss"] = await rss_over_requests(base_url, process.pid, requests)
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
    stops = server["stops"]
    stop_ms = sorted(stop["stopped_s"] * 1000 for stop in stops)
    free_ms = sorted(stop["slot_free_s"] * 1000 for stop in stops)
    rows.append(
        f"server WebSocket stop → stopped: median {statistics.median(stop_ms):.0f} ms, max {stop_ms[-1]:.0f} ms;"
        f" stopped → slot free: median {statistics.median(free_ms):.0f} ms, max {free_ms[-1]:.0f} ms;"
        f" audio after stopped: {sum(stop['stale_bytes'] for stop in stops)} B"
    )
    memory = server["requests_rss"]
    rows.append(
        f"server: {server['slots']} slots, ready in {server['start_s']:.1f} s, "
        f"RSS idle {server['rss_idle_mb']:.0f} MB; after 100 warm-up requests, each 100 of {memory['requests']} more:"
        f" {' '.join(f'{mb:.0f}' for mb in memory['series_mb'])} MB; after the runs {server['rss_mb']:.0f} MB"
        f" (peak {server['rss_peak_mb']:.0f} MB)"
    )
    raw_rss = results["raw"]["rss_mb"]
    rows.append(f"raw piper process: RSS {raw_rss[0]:.0f} MB (peak {raw_rss[1]:.0f} MB) with both sessions loaded")
    rows.append(f"cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f}")
    return "\n".join(rows)


def _best_raw(results: dict[str, Any], callers: int, key: str, *, lowest: bool) -> float:
    figures = [results["raw"][mode][callers][key] for mode in ("1 thread", "default")]
    return float(min(figures) if lowest else max(figures))


def targets(results: dict[str, Any]) -> str:
    """The server's targets against the best raw figure of this run, each marked met or not."""
    server = results["server"]
    raw_first = _best_raw(results, 1, "first_audio_median_s", lowest=True)
    rows: list[tuple[str, str, str, bool]] = []
    for route in ("sse", "ws"):
        first = server[f"{route}_1"]["first_audio_median_s"]
        rows.append(
            (
                f"first audio, {route}, 1 stream",
                f"{first * 1000:.0f} ms",
                f"<= raw {raw_first * 1000:.0f} + 30 ms",
                first <= raw_first + 0.030,
            )
        )
    for streams in (2, 8):
        best = _best_raw(results, streams, "audio_s_per_s", lowest=False)
        for route in ("sse", "ws"):
            rate = server[f"{route}_{streams}"]["audio_s_per_s"]
            rows.append(
                (
                    f"throughput, {route}, {streams} streams",
                    f"{rate:.1f} audio s/s ({rate / best:.1%})",
                    f">= 90% of raw's best {best:.1f}",
                    rate >= 0.9 * best,
                )
            )
    # Eight first sentences on 2 cores take at least 4 one-thread sentence times (a sentence on a core
    # of its own is the cheapest in CPU), so this bound is 4 x the one-thread raw first sentence.
    one_thread_first = results["raw"]["1 thread"][1]["first_audio_median_s"]
    for route in ("sse", "ws"):
        slowest = server[f"{route}_8"]["first_audio_max_s"]
        rows.append(
            (
                f"slowest first audio of 8, {route}",
                f"{slowest:.2f} s",
                f"<= 4 x raw 1-thread first {4 * one_thread_first:.2f} s",
                slowest <= 4 * one_thread_first,
            )
        )
    for name, peer in results.get("peers", {}).items():
        eight = next((figures for key, figures in peer.items() if key.endswith("_8")), None)
        if eight is None:
            continue
        for route in ("sse", "ws"):
            ours = server[f"{route}_8"]
            rows.append(
                (
                    f"8 streams vs {name}, {route}: throughput",
                    f"{ours['audio_s_per_s']:.1f} audio s/s",
                    f">= {eight['audio_s_per_s']:.1f}",
                    ours["audio_s_per_s"] >= eight["audio_s_per_s"],
                )
            )
            rows.append(
                (
                    f"8 streams vs {name}, {route}: slowest first audio",
                    f"{ours['first_audio_max_s']:.2f} s",
                    f"<= 1/4 of {eight['first_audio_max_s']:.2f} s",
                    ours["first_audio_max_s"] <= eight["first_audio_max_s"] / 4,
                )
            )
    stops = server["stops"]
    worst_stop = max(stop["stopped_s"] for stop in stops)
    worst_free = max(stop["slot_free_s"] for stop in stops)
    stale = sum(stop["stale_bytes"] for stop in stops)
    rows.append(("stop -> stopped (worst)", f"{worst_stop * 1000:.0f} ms", "<= 50 ms", worst_stop <= 0.050))
    rows.append(("stopped -> slot free (worst)", f"{worst_free * 1000:.0f} ms", "<= 50 ms", worst_free <= 0.050))
    rows.append(("audio after stopped", f"{stale} B", "0", stale == 0))
    memory = server["requests_rss"]
    growth = memory["rss_after_mb"] - memory["rss_before_mb"]
    rows.append(
        (
            f"RSS growth over {memory['requests']} requests",
            f"{growth:+.1f} MB",
            "no trend (<= +10% of after warm-up)",
            growth <= 0.1 * memory["rss_before_mb"],
        )
    )
    width = max(len(row[0]) for row in rows)
    lines = [f"{'target':{width}}  {'measured':>24}  {'aim':<32} met"]
    lines += [f"{label:{width}}  {value:>24}  {aim:<32} {'yes' if ok else 'NO'}" for label, value, aim, ok in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="three sentences instead of ten")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--peers", action="store_true", help="also run piper.http_server and wyoming-piper")
    parser.add_argument("--peer-venv", type=Path, help="the separate venv the peers are installed in")
    args = parser.parse_args()
    text = QUICK_TEXT if args.quick else PARAGRAPH
    trials = 1 if args.quick else TRIALS
    results: dict[str, Any] = {"text_chars": len(text), "trials": trials, "raw": {}}
    # The server first, while this process holds no raw session: measured here, a client process holding
    # both raw sessions (1.5 GB) slowed the server's runs by ~10 % (more CPU time for the same sentences).
    results["server"] = trio.run(server_bench, text, STOP_REPEATS, 100 if args.quick else REQUESTS_FOR_RSS, trials)
    for mode in ("1 thread", "default"):
        voice = load_raw(mode)
        results["raw"][mode] = {
            callers: median_of([quiet(raw_run)(voice, text, callers) for _ in range(trials)]) for callers in CONCURRENCY
        }
    results["raw"]["rss_mb"] = rss_mb(os.getpid())
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
    print()
    print(targets(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
