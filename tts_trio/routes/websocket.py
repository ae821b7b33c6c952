"""``WS /v1/tts/stream``: generate, stop and ping over one socket.

Client messages are JSON text: ``{"action": "generate", "text": ...}``,
``{"action": "stop"}``, ``{"action": "ping"}``. For each generation the
server sends ``{"type": "start", ...}`` (request id and audio format), binary
audio messages, then ``{"type": "metrics", "data": {...}}`` and
``{"type": "done"}``.

* A ``generate`` while another runs is queued (up to ``ws_max_queued``) and
  starts when the previous one ends, so a voice agent can send sentence
  after sentence; beyond that limit the client gets a ``queue_full`` error.
* ``stop`` cancels the running generation and every queued one; the server
  answers ``{"type": "stopped"}`` after the last audio message of the
  cancelled generation, and never sends audio of it afterwards.
* ``ping`` is answered with ``{"type": "pong"}`` at once, between audio
  messages of a running generation.
* Bad messages get ``{"type": "error", "code", "message"}`` and the socket
  stays open.

By default each binary message is a complete small WAV file, so a browser
can hand every message to ``decodeAudioData`` (the seed's JavaScript client
does); ``"output_format": "pcm"`` sends bare samples instead.

All sends go through one lock and are shielded from cancellation: a send
interrupted half-way would corrupt the socket for every later message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import trio
from quart import Blueprint, websocket

from tts_trio.app import current_service, current_settings
from tts_trio.audio import AudioFormat, frame_aligned, split_chunks, wav_file
from tts_trio.errors import ApiError, BadRequest, InvalidJson, QueueFull, UnknownAction
from tts_trio.params import WsGenerateParams, parse_json_params
from tts_trio.pipeline import StreamError, SynthesisJob, open_audio_stream
from tts_trio.service import TtsService
from tts_trio.settings import Settings

log = logging.getLogger(__name__)
blueprint = Blueprint("websocket", __name__)

#: A send that takes longer than this means the client stopped reading.
SEND_TIMEOUT = 30.0
_WAV_HEADER_BYTES = 44


class ClientStalled(Exception):
    """Raised when a send to the client did not complete in time; the socket is dropped."""


@attrs.frozen
class _Generation:
    job: SynthesisJob
    params: WsGenerateParams
    request_id: str
    epoch: int


@blueprint.websocket("/v1/tts/stream")
async def stream_ws() -> None:
    # The session keeps the connection object itself, not the context-local proxy.
    session = _Session(websocket._get_current_object(), current_service(), current_settings())  # type: ignore[attr-defined]
    await session.run()


class _Session:
    """One WebSocket connection: a reader loop plus a task that runs generations in order."""

    def __init__(self, ws: Any, service: TtsService, settings: Settings) -> None:
        self.ws = ws
        self.service = service
        self.settings = settings
        self._send_lock = trio.Lock()
        self._epoch = 0
        self._counter = 0
        self._running: trio.CancelScope | None = None
        self._running_id: str | None = None
        self._queue_send, self._queue_receive = trio.open_memory_channel[_Generation](settings.ws_max_queued)

    async def run(self) -> None:
        await self.ws.accept()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_generations)
            while True:
                message = await self.ws.receive()
                try:
                    await self._dispatch(message)
                except ApiError as error:
                    await self._send_json({"type": "error", **error.to_dict()})

    # -- incoming ---------------------------------------------------------
    async def _dispatch(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise BadRequest("binary messages are not accepted; send JSON text")
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidJson("the message is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("a message must be a JSON object with an 'action'")
        action = data.pop("action", None)
        if action == "ping":
            await self._send_json({"type": "pong"})
        elif action == "stop":
            await self._stop()
        elif action == "generate":
            try:
                self._enqueue(data)
            except ApiError as error:
                request_id = data.get("request_id")
                if isinstance(request_id, str) and "request_id" not in error.details:
                    error.details["request_id"] = request_id[:128]
                raise
        elif action is None:
            raise BadRequest("the message has no 'action'; use generate, stop or ping")
        else:
            raise UnknownAction(f"unknown action {str(action)[:40]!r}; use generate, stop or ping")

    def _enqueue(self, data: dict[str, Any]) -> None:
        params = parse_json_params(WsGenerateParams, data, max_text_chars=self.settings.max_text_chars)
        job = self.service.job(params)
        self._counter += 1
        request_id = params.request_id or f"g{self._counter}"
        try:
            self._queue_send.send_nowait(_Generation(job, params, request_id, self._epoch))
        except trio.WouldBlock:
            raise QueueFull(
                f"{self.settings.ws_max_queued} generations are already queued; wait for 'done' or send 'stop'",
                request_id=request_id,
            ) from None

    async def _stop(self) -> None:
        self._epoch += 1  # queued generations of older epochs are skipped
        stopped_id = self._running_id
        if self._running is not None:
            self._running.cancel()
        # The send lock orders this after any audio send in flight; the
        # cancelled generation cannot start another one.
        await self._send_json({"type": "stopped", "request_id": stopped_id})

    # -- generations -----------------------------------------------------
    async def _run_generations(self) -> None:
        async for generation in self._queue_receive:
            if generation.epoch != self._epoch:
                continue
            with trio.CancelScope() as scope:
                self._running, self._running_id = scope, generation.request_id
                try:
                    await self._generate(generation)
                finally:
                    self._running, self._running_id = None, None

    async def _generate(self, generation: _Generation) -> None:
        fmt = self.service.pool.audio_format
        params = generation.params
        await self._send_json(
            {"type": "start", "request_id": generation.request_id, "format": fmt.describe(params.output_format)}
        )
        failure: StreamError | None = None
        with self.service.track_stream():
            async with trio.open_nursery() as nursery:
                receive, metrics = open_audio_stream(nursery, self.service.pool, generation.job)
                async with receive:
                    async for item in receive:
                        if isinstance(item, StreamError):
                            failure = item
                            break
                        for message, pcm_bytes in _audio_messages(item.pcm, fmt, params):
                            await self._send(message)
                            metrics.audio_sent(len(message), pcm_bytes)
        metrics.finish()
        if failure is not None:
            await self._send_json(
                {"type": "error", "code": failure.code, "message": failure.message, "request_id": generation.request_id}
            )
            return
        data = metrics.to_dict(fmt.sample_rate * fmt.frame_size)
        await self._send_json({"type": "metrics", "request_id": generation.request_id, "data": data})
        await self._send_json({"type": "done", "request_id": generation.request_id})

    # -- outgoing ---------------------------------------------------------
    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self._send(json.dumps(payload, separators=(",", ":")))

    async def _send(self, data: str | bytes) -> None:
        async with self._send_lock:
            with trio.move_on_after(SEND_TIMEOUT) as scope:
                scope.shield = True
                await self.ws.send(data)
            if scope.cancelled_caught:
                raise ClientStalled("the client did not read for too long")


def _audio_messages(pcm: bytes, fmt: AudioFormat, params: WsGenerateParams) -> list[tuple[bytes, int]]:
    """Binary messages for one engine chunk, with the PCM bytes each carries."""
    wav = params.output_format == "wav"
    if params.chunk_size is None:
        pieces = [pcm]
    else:
        room = params.chunk_size - (_WAV_HEADER_BYTES if wav else 0)
        pieces = list(split_chunks(pcm, frame_aligned(room, fmt)))
    return [(wav_file(fmt, piece) if wav else piece, len(piece)) for piece in pieces]
