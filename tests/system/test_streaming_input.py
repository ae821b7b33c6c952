"""WebSocket text-in streaming: text arrives in pieces (an LLM writing) and is spoken as it comes."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import numpy as np
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.support.live import LiveServer, eventually, start_live_server
from tests.system.test_ssml import assert_break_between_sentences
from tts_trio.settings import Settings

LLM_OUTPUT = "Sure, here is the plan. First we boil the water. Then we add the pasta and wait. Enjoy your meal!"


async def next_json(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                return dict(json.loads(message))


async def collect_until_done(ws: WebSocketConnection, context_id: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = await next_json(ws)
        messages.append(message)
        if message["type"] == "done" and message.get("context_id") == context_id:
            return messages


async def test_first_sentence_is_spoken_before_the_input_ends(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        tokens = [LLM_OUTPUT[i : i + 4] for i in range(0, len(LLM_OUTPUT), 4)]
        first_sentence_end = LLM_OUTPUT.index(".") + 1
        sent = 0
        for token in tokens:
            await ws.send_message(json.dumps({"action": "append", "context_id": "llm", "text": token}))
            sent += len(token)
            if sent > first_sentence_end + 2:
                break
        start = await next_json(ws)
        assert start["type"] == "start" and start["context_id"] == "llm"
        assert start["format"]["container"] == "pcm"
        # Audio of "Sure, here is the plan." while most of the text has not been sent.
        first_audio = []
        while (timings := await next_json(ws))["type"] == "audio":
            assert timings["context_id"] == "llm"
            first_audio.append(timings)
        assert [message["index"] for message in first_audio] == list(range(1, len(first_audio) + 1))
        assert timings["type"] == "timings" and timings["text"] == "Sure, here is the plan."
        for token in tokens[len(tokens[: sent // 4]) :]:
            await ws.send_message(json.dumps({"action": "append", "context_id": "llm", "text": token}))
        await ws.send_message(json.dumps({"action": "end", "context_id": "llm"}))
        rest = await collect_until_done(ws, "llm")
        spoken = [timings["text"]] + [m["text"] for m in rest if m["type"] == "timings"]
        assert spoken == [
            "Sure, here is the plan.",
            "First we boil the water.",
            "Then we add the pasta and wait.",
            "Enjoy your meal!",
        ]
        metrics = next(m for m in rest if m["type"] == "metrics")
        pcm = sum(len(base64.b64decode(m["chunk"])) for m in first_audio + rest if m["type"] == "audio")
        assert metrics["data"]["total_bytes"] == pcm
        assert metrics["data"]["sentences"] == 4


async def test_flush_speaks_text_without_a_sentence_end(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(
            json.dumps({"action": "append", "context_id": "c", "text": "no full stop yet", "output_format": "wav"})
        )
        await ws.send_message(json.dumps({"action": "flush", "context_id": "c"}))
        start = await next_json(ws)
        assert start["format"]["container"] == "wav"
        audio = await next_json(ws)
        assert base64.b64decode(audio["chunk"]).startswith(b"RIFF")
        while (message := await next_json(ws))["type"] == "audio":
            pass
        assert message["text"] == "no full stop yet"
        await ws.send_message(json.dumps({"action": "end", "context_id": "c"}))
        assert (await collect_until_done(ws, "c"))[-1]["type"] == "done"


async def test_two_contexts_on_one_socket_run_independently(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        for context_id, voice in (("a", "en-us"), ("b", "de")):
            await ws.send_message(
                json.dumps(
                    {"action": "append", "context_id": context_id, "text": "One. Two. Three.", "voice_id": voice}
                )
            )
        for context_id in ("a", "b"):
            await ws.send_message(json.dumps({"action": "end", "context_id": context_id}))
        done: set[str] = set()
        seen: dict[str, list[str]] = {"a": [], "b": []}
        while done != {"a", "b"}:
            message = await next_json(ws)
            seen[message["context_id"]].append(message["type"])
            if message["type"] == "done":
                done.add(message["context_id"])
        for types in seen.values():
            assert types[0] == "start" and types[-2:] == ["metrics", "done"]
            assert types.count("timings") == 3


async def test_stop_cancels_contexts_and_their_audio(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "append", "context_id": "x", "text": LLM_OUTPUT * 20}))
        assert (await next_json(ws))["type"] == "start"
        assert (await next_json(ws))["type"] == "audio"
        await ws.send_message(json.dumps({"action": "stop", "context_id": "x"}))
        while (message := await next_json(ws))["type"] != "stopped":
            assert message["context_id"] == "x"
        assert message["context_id"] == "x"
        await ws.send_message(json.dumps({"action": "ping"}))
        assert await next_json(ws) == {"type": "pong"}  # nothing of "x" in between
        await ws.send_message(json.dumps({"action": "flush", "context_id": "x"}))
        assert (await next_json(ws))["code"] == "invalid_parameter"  # the context is gone
    await eventually(lambda: live_server.service.pool.statistics().in_use == 0)


async def test_context_errors_keep_the_socket_usable(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        cases = [
            ({"action": "append", "text": "hi"}, "invalid_parameter"),
            ({"action": "append", "context_id": "c", "text": ""}, "invalid_parameter"),
            ({"action": "flush", "context_id": "missing"}, "invalid_parameter"),
            ({"action": "append", "context_id": "c", "text": "hi", "voice_id": "nope"}, "voice_not_found"),
            ({"action": "append", "context_id": "c", "text": "hi", "colour": "red"}, "invalid_parameter"),
        ]
        for message, code in cases:
            await ws.send_message(json.dumps(message))
            reply = await next_json(ws)
            assert (reply["type"], reply["code"]) == ("error", code), reply
        await ws.send_message(json.dumps({"action": "append", "context_id": "c", "text": "Hello."}))
        await ws.send_message(json.dumps({"action": "append", "context_id": "c", "text": " Again.", "speed": 2}))
        errors = []
        while True:
            reply = await next_json(ws)
            if reply["type"] == "error":
                errors.append(reply["code"])
                break
        assert errors == ["invalid_parameter"]
        await ws.send_message(json.dumps({"action": "end", "context_id": "c"}))
        await ws.send_message(json.dumps({"action": "append", "context_id": "c", "text": "late"}))
        replies = await collect_until_done(ws, "c")
        assert replies[-1]["type"] == "done"


async def test_an_idle_context_is_ended_unless_flush_keeps_it_open(settings: Settings, nursery: trio.Nursery) -> None:
    server, _ = await start_live_server(nursery, attrs.evolve(settings, context_idle_timeout=0.5))
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "append", "context_id": "idle", "text": "Waiting for"}))
        await ws.send_message(json.dumps({"action": "append", "context_id": "kept", "text": "Still here"}))
        # "kept" gets a flush with nothing held now and then, "idle" gets nothing.
        ended: dict[str, Any] | None = None
        with trio.move_on_after(1.5):
            async with trio.open_nursery() as keeper:

                async def keep_alive() -> None:
                    while True:
                        await trio.sleep(0.1)
                        await ws.send_message(json.dumps({"action": "flush", "context_id": "kept"}))

                keeper.start_soon(keep_alive)
                while ended is None:
                    message = await next_json(ws)
                    if message["type"] == "error":
                        ended = message
        assert ended is not None and (ended["context_id"], ended["code"]) == ("idle", "context_idle")
        await ws.send_message(json.dumps({"action": "append", "context_id": "kept", "text": ", and done."}))
        await ws.send_message(json.dumps({"action": "end", "context_id": "kept"}))
        messages = await collect_until_done(ws, "kept")
    spoken = " ".join(m["text"] for m in messages if m["type"] == "timings" and m["context_id"] == "kept")
    assert "done" in spoken
    assert not any(m["type"] == "error" for m in messages)
    await eventually(lambda: server.service.active_streams == 0)


async def test_a_context_speaks_ssml_documents_sent_in_pieces(live_server: LiveServer) -> None:
    """A context whose first append is ``<speak`` speaks each whole document: its breaks are silence."""
    pieces = ["<speak>The first sentence", " is here.<break ", 'time="1s"/>And the second', " one follows.</speak>"]
    async with open_websocket_url(live_server.ws_url) as ws:
        for index, piece in enumerate(pieces):
            options = {"output_format": "pcm"} if index == 0 else {}
            await ws.send_message(json.dumps({"action": "append", "context_id": "s", "text": piece, **options}))
        # A broken document: an error naming the context, which goes on.
        await ws.send_message(json.dumps({"action": "append", "context_id": "s", "text": "<speak><nope/></speak>"}))
        await ws.send_message(
            json.dumps({"action": "append", "context_id": "s", "text": "<speak>A third one.</speak>"})
        )
        await ws.send_message(json.dumps({"action": "end", "context_id": "s"}))
        messages = await collect_until_done(ws, "s")
    errors = [message for message in messages if message["type"] == "error"]
    assert len(errors) == 1 and errors[0]["context_id"] == "s" and "nope" in errors[0]["message"]
    spoken = [message["text"] for message in messages if message["type"] == "timings"]
    assert spoken == ["The first sentence is here.", "And the second one follows.", "A third one."]
    pcm = b"".join(base64.b64decode(message["chunk"]) for message in messages if message["type"] == "audio")
    samples = np.frombuffer(pcm, dtype="<i2")
    assert_break_between_sentences(samples, messages[0]["format"]["sample_rate"])


async def test_an_unfinished_ssml_document_at_the_end_is_an_error_and_the_rest_is_spoken(
    live_server: LiveServer,
) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "append", "context_id": "u", "text": "<speak>Whole.</speak>"}))
        await ws.send_message(json.dumps({"action": "append", "context_id": "u", "text": "<speak>Never closed"}))
        await ws.send_message(json.dumps({"action": "end", "context_id": "u"}))
        messages = await collect_until_done(ws, "u")
    assert [message["type"] for message in messages if message["type"] == "error"] == ["error"]
    assert [message["text"] for message in messages if message["type"] == "timings"] == ["Whole."]
