"""Benchmark: time to first audio on every protocol the server speaks, on the same text, in one run.

Starts ``tts-trio serve`` with the Wyoming listener on free loopback ports
and measures, for the first sentence and for the 10-sentence paragraph of
``bench/bench.py``, the time from sending the text (the connection and any
opening message already done) to the first audio on:

* our WebSocket (``generate``, and a text-in context: ``append`` + ``end``),
* Wyoming ``synthesize`` (Home Assistant's protocol, raw TCP),
* the vendor dialects' WebSockets: Cartesia ``/tts/websocket``, Deepgram
  ``/v1/speak`` (``Speak`` + ``Flush``) and ElevenLabs ``stream-input``,

and, as the baseline, raw ``espeak-ng --stdout`` on the first sentence. The
protocols are measured in turns (one of each per round), so a noisy moment
on the machine falls on all of them alike; the figure is the median. The
target: each other protocol within 5 ms of our own WebSocket. It also
cancels a long text on each WebSocket once its audio flows (our ``stop``,
Deepgram's ``Clear``, Cartesia's ``cancel``, ElevenLabs' ``close_context``),
times the answer where the protocol has one, and counts audio of the
cancelled text received after it, which must be none.

The clients here are minimal ones written to each wire format, not the
protocols' own client libraries (their overhead is not the server's); those
are exercised by the test suite.

Usage: ``python bench/protocols_bench.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from bench import FIRST_SENTENCE, PARAGRAPH, espeak_once, free_port, uncached_env

LONG_TEXT = " ".join([PARAGRAPH] * 4)
RATE = 22050
#: The target: each dialect's median time to first audio within this of our own WebSocket's.
TARGET_MS = 5.0

Measure = Callable[[str], Awaitable[float]]


def start_server(port: int, wyoming_port: int) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("tts-trio")),
        *("serve", "--port", str(port), "--wyoming-port", str(wyoming_port), "--log-level", "warning"),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=uncached_env())


async def _first_binary(ws: WebSocketConnection) -> float:
    while True:
        message = await ws.get_message()
        if isinstance(message, bytes) and message:
            return time.perf_counter()


# -- one measure per protocol: seconds from the text sent to the first audio ----------------------
class Protocols:
    def __init__(self, port: int, wyoming_port: int) -> None:
        self.ws_base = f"ws://127.0.0.1:{port}"
        self.wyoming_port = wyoming_port

    async def ours_generate(self, text: str) -> float:
        async with open_websocket_url(self.ws_base + "/v1/tts/stream", max_message_size=1 << 24) as ws:
            started = time.perf_counter()
            await ws.send_message(json.dumps({"action": "generate", "text": text, "output_format": "pcm"}))
            first = await _first_binary(ws)
            await ws.send_message(json.dumps({"action": "stop"}))
            return first - started

    async def ours_context(self, text: str) -> float:
        async with open_websocket_url(self.ws_base + "/v1/tts/stream", max_message_size=1 << 24) as ws:
            started = time.perf_counter()
            await ws.send_message(
                json.dumps({"action": "append", "context_id": "c", "text": text, "output_format": "pcm"})
            )
            await ws.send_message(json.dumps({"action": "end", "context_id": "c"}))
            while True:
                message = json.loads(await ws.get_message())
                if message.get("type") == "audio":
                    first = time.perf_counter()
                    break
            await ws.send_message(json.dumps({"action": "stop"}))
            return first - started

    async def wyoming(self, text: str) -> float:
        stream = await trio.open_tcp_stream("127.0.0.1", self.wyoming_port)
        async with stream:
            reader = _WyomingReader(stream)
            started = time.perf_counter()
            await stream.send_all(_wyoming_event("synthesize", {"text": text}))
            while True:
                kind, _ = await reader.event()
                if kind == "audio-chunk":
                    return time.perf_counter() - started
                if kind == "error":
                    raise RuntimeError("wyoming answered an error")

    async def cartesia(self, text: str) -> float:
        async with open_websocket_url(self.ws_base + "/tts/websocket", max_message_size=1 << 24) as ws:
            started = time.perf_counter()
            await ws.send_message(json.dumps(_cartesia_request("c", text)))
            while True:
                message = json.loads(await ws.get_message())
                if message.get("type") == "chunk":
                    first = time.perf_counter()
                    break
            await ws.send_message(json.dumps({"context_id": "c", "cancel": True}))
            return first - started

    async def deepgram(self, text: str) -> float:
        url = f"{self.ws_base}/v1/speak?encoding=linear16&sample_rate={RATE}"
        async with open_websocket_url(url, max_message_size=1 << 24) as ws:
            started = time.perf_counter()
            await ws.send_message(json.dumps({"type": "Speak", "text": text}))
            await ws.send_message(json.dumps({"type": "Flush"}))
            first = await _first_binary(ws)
            await ws.send_message(json.dumps({"type": "Clear"}))
            return first - started

    async def elevenlabs(self, text: str) -> float:
        url = f"{self.ws_base}/v1/text-to-speech/default/stream-input?output_format=pcm_{RATE}"
        async with open_websocket_url(url, max_message_size=1 << 24) as ws:
            await ws.send_message(json.dumps({"text": " "}))  # the opening message every client sends
            started = time.perf_counter()
            await ws.send_message(json.dumps({"text": text + " ", "flush": True}))
            while True:
                message = json.loads(await ws.get_message())
                if message.get("audio"):
                    return time.perf_counter() - started
                if message.get("error") or message.get("isFinal"):
                    raise RuntimeError(f"elevenlabs answered {message}")

    def all(self) -> dict[str, Measure]:
        return {
            "ours (WS generate)": self.ours_generate,
            "ours (WS context)": self.ours_context,
            "Wyoming synthesize": self.wyoming,
            "Cartesia WS": self.cartesia,
            "Deepgram WS": self.deepgram,
            "ElevenLabs stream-input": self.elevenlabs,
        }


def _cartesia_request(context_id: str, text: str) -> dict[str, Any]:
    return {
        "context_id": context_id,
        "model_id": "sonic-2",
        "transcript": text,
        "voice": {"mode": "id", "id": "any"},
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": RATE},
    }


def _wyoming_event(kind: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data).encode()
    return json.dumps({"type": kind, "data_length": len(body)}).encode() + b"\n" + body


class _WyomingReader:
    """Just enough of Wyoming's framing (a JSON line, then data and payload bytes) to read events."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("the Wyoming server closed the connection")
            self.buffer += data

    async def _take(self, size: int) -> bytes:
        await self._fill(size)
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    async def event(self) -> tuple[str, bytes]:
        while b"\n" not in self.buffer:
            await self._fill(len(self.buffer) + 1)
        line, self.buffer = self.buffer.split(b"\n", 1)
        header = json.loads(line)
        await self._take(header.get("data_length") or 0)
        payload = await self._take(header.get("payload_length") or 0)
        return header["type"], payload


# -- cancel: the answer's latency and audio after it ----------------------------------------------
async def ours_stop(ws_base: str) -> tuple[float, int]:
    async with open_websocket_url(ws_base + "/v1/tts/stream", max_message_size=1 << 24) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT, "output_format": "pcm"}))
        await _first_binary(ws)
        started = time.perf_counter()
        await ws.send_message(json.dumps({"action": "stop"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and json.loads(message).get("type") == "stopped":
                latency = time.perf_counter() - started
                break
        return latency, await _late_audio(ws, ping=json.dumps({"action": "ping"}), pong="pong")


async def deepgram_clear(ws_base: str) -> tuple[float, int]:
    """``Clear`` -> ``Cleared`` while a long text is spoken, and audio after ``Cleared`` (a later text's)."""
    url = f"{ws_base}/v1/speak?encoding=linear16&sample_rate={RATE}"
    async with open_websocket_url(url, max_message_size=1 << 24) as ws:
        await ws.send_message(json.dumps({"type": "Speak", "text": LONG_TEXT}))
        await ws.send_message(json.dumps({"type": "Flush"}))
        await _first_binary(ws)
        started = time.perf_counter()
        await ws.send_message(json.dumps({"type": "Clear"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and json.loads(message).get("type") == "Cleared":
                latency = time.perf_counter() - started
                break
        return latency, await _late_audio(ws)


async def cartesia_cancel(ws_base: str) -> tuple[float, int]:
    """``cancel`` of a long context, then a new one: the cancelled context's chunks after the new one's first.

    Cartesia does not answer a cancel, so the figure is the time from the
    cancel to the new context's first audio, which queues behind it.
    """
    async with open_websocket_url(ws_base + "/tts/websocket", max_message_size=1 << 24) as ws:
        await ws.send_message(json.dumps(_cartesia_request("long", LONG_TEXT)))
        while json.loads(await ws.get_message()).get("type") != "chunk":
            pass
        started = time.perf_counter()
        await ws.send_message(json.dumps({"context_id": "long", "cancel": True}))
        await ws.send_message(json.dumps(_cartesia_request("next", FIRST_SENTENCE)))
        late, latency = 0, None
        with trio.move_on_after(5):
            while True:
                message = json.loads(await ws.get_message())
                if message.get("type") != "chunk":
                    if message.get("context_id") == "next" and message.get("type") == "done":
                        break
                    continue
                if message.get("context_id") == "next" and latency is None:
                    latency = time.perf_counter() - started
                elif message.get("context_id") == "long" and latency is not None:
                    late += len(base64.b64decode(message["data"]))
        if latency is None:
            raise RuntimeError("cartesia: no audio for the context after the cancel")
        return latency, late


async def elevenlabs_close_context(ws_base: str) -> tuple[float, int]:
    """``close_context`` of a long multi-stream context -> its ``isFinal``, and its audio after that."""
    url = f"{ws_base}/v1/text-to-speech/default/multi-stream-input?output_format=pcm_{RATE}"
    async with open_websocket_url(url, max_message_size=1 << 24) as ws:
        await ws.send_message(json.dumps({"text": " ", "context_id": "long"}))
        # No flush: a close_context straight after a flush lets the flushed text finish (LiveKit ends
        # every turn that way), while one during plain text stops the context at once.
        await ws.send_message(json.dumps({"text": LONG_TEXT + " ", "context_id": "long"}))
        while not json.loads(await ws.get_message()).get("audio"):
            pass
        started = time.perf_counter()
        await ws.send_message(json.dumps({"context_id": "long", "close_context": True}))
        while True:
            message = json.loads(await ws.get_message())
            if message.get("isFinal") and message.get("contextId", message.get("context_id")) == "long":
                latency = time.perf_counter() - started
                break
        late = 0
        with trio.move_on_after(0.3):
            while True:
                message = json.loads(await ws.get_message())
                if message.get("audio"):
                    late += len(base64.b64decode(message["audio"]))
        return latency, late


async def _late_audio(ws: WebSocketConnection, ping: str | None = None, pong: str = "") -> int:
    """Audio bytes that arrive within 0.3 s after a cancel was answered (must be none)."""
    late = 0
    if ping is not None:
        await ws.send_message(ping)
    with trio.move_on_after(0.3):
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                late += len(message)
            elif json.loads(message).get("type") == "audio":
                late += 1
    return late


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


async def run(quick: bool) -> dict[str, Any]:
    port, wyoming_port = free_port(), free_port()
    server = start_server(port, wyoming_port)
    rounds = 5 if quick else 25
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        protocols = Protocols(port, wyoming_port)
        measures = protocols.all()
        texts = {"first sentence": FIRST_SENTENCE, "paragraph": PARAGRAPH}
        samples: dict[str, dict[str, list[float]]] = {t: {name: [] for name in measures} for t in texts}
        for measure in measures.values():  # one warm-up each: imports, first connection
            await measure(FIRST_SENTENCE)
        for _ in range(rounds):
            for label, text in texts.items():
                for name, measure in measures.items():
                    samples[label][name].append(await measure(text))
        cancels: dict[str, list[tuple[float, int]]] = {
            "ours stop -> stopped": [],
            "Deepgram Clear -> Cleared": [],
            "Cartesia cancel -> next context's audio": [],
            "ElevenLabs close_context -> isFinal": [],
        }
        for _ in range(3 if quick else 8):
            for name, cancel in zip(
                cancels, (ours_stop, deepgram_clear, cartesia_cancel, elevenlabs_close_context), strict=True
            ):
                cancels[name].append(await cancel(protocols.ws_base))
    finally:
        server.terminate()
        server.wait(timeout=30)
    baseline = statistics.median(espeak_once(FIRST_SENTENCE) for _ in range(rounds))
    return {
        "rounds": rounds,
        "ttfa_ms": {
            label: {name: round(statistics.median(values) * 1000, 2) for name, values in by_name.items()}
            for label, by_name in samples.items()
        },
        "espeak_first_sentence_ms": round(baseline * 1000, 2),
        "cancel": {
            name: {
                "ms": round(statistics.median(latency for latency, _ in runs) * 1000, 2),
                "late_audio_bytes": sum(late for _, late in runs),
            }
            for name, runs in cancels.items()
        },
    }


def table(results: dict[str, Any]) -> str:
    rows = ["| protocol | first sentence (ms) | paragraph (ms) | vs our WS generate |", "|---|---|---|---|"]
    ttfa = results["ttfa_ms"]
    reference = ttfa["first sentence"]["ours (WS generate)"]
    for name in ttfa["first sentence"]:
        first, para = ttfa["first sentence"][name], ttfa["paragraph"][name]
        delta = first - reference
        verdict = "" if name.startswith("ours") else (" ✓" if delta <= TARGET_MS else " ✗")
        rows.append(f"| {name} | {first:.2f} | {para:.2f} | {delta:+.2f} ms{verdict} |")
    rows.append(f"| raw espeak-ng, whole first sentence | {results['espeak_first_sentence_ms']:.2f} | | baseline |")
    rows += ["", "| cancel | answer (ms) | audio of the cancelled text after it |", "|---|---|---|"]
    for name, cancel in results["cancel"].items():
        rows.append(f"| {name} | {cancel['ms']:.2f} | {cancel['late_audio_bytes']} B |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/protocols.json"))
    args = parser.parse_args()
    results = trio.run(run, args.quick)
    print(f"machine: {os.cpu_count()} cores, {results['rounds']} rounds, median time to first audio")
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
