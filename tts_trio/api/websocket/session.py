"""``WS /v1/tts/stream``: generate, stop and ping, plus text-in streaming contexts.

Client messages are JSON text. The actions of the original API:

* ``{"action": "generate", "text": ...}``: the server sends
  ``{"type": "start", ...}`` (request id and audio format), binary audio
  messages with a ``{"type": "timings", ...}`` message after each sentence,
  then ``{"type": "metrics", "data": {...}}`` and ``{"type": "done"}``. A
  ``generate`` while another runs is queued (up to ``ws_max_queued``) and
  starts when the previous one ends; beyond that the client gets a
  ``queue_full`` error.
* ``{"action": "stop"}`` cancels the running generation, every queued one and
  every context; the server answers ``{"type": "stopped"}`` after the last
  audio message of what it cancelled and never sends audio of it afterwards.
  ``{"action": "stop", "context_id": ...}`` stops one context.
* ``{"action": "ping"}`` is answered with ``{"type": "pong"}`` at once,
  between audio messages of running generations.

Text-in streaming, for LLM output (see docs/streaming-input.md):
``{"action": "append", "context_id", "text"}`` adds text to a context
(created by its first ``append``, which may also carry ``voice_id``,
``output_format``, ``sample_rate`` and ``speed``); sentences are spoken as
soon as their end is certain; ``flush`` speaks what is held; ``end`` says no
more text will come. Several contexts can run on one socket at once; their
audio comes as ``{"type": "audio", "context_id", "chunk": base64, "index"}``
so it cannot be confused.

Bad messages get ``{"type": "error", "code", "message"}`` and the socket
stays open.

When the server shuts down, new and queued work is refused with a
``shutting_down`` error, running work finishes or ends with that error at
the drain deadline, and then the socket is closed with 1001 (going away).

With ``output_format: "wav"`` (the default for ``generate``) each binary
message is a complete small WAV file, so a browser can hand every message to
``decodeAudioData`` (the original API's JavaScript client does). Every other format
is one continuous stream across the messages of a generation.

The rules (what each message means, which messages answer it) live in
:mod:`.protocol`; this module is the I/O: the reader loop, one task for the
generation queue and one per context, and the sends. All sends go through
one lock and are shielded from cancellation: a send interrupted half-way
would corrupt the socket for every later message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
import h11
import trio
from quart import Blueprint, websocket

from tts_trio.api.security import accept_subprotocol
from tts_trio.api.state import current_service, current_settings
from tts_trio.api.websocket.frames import ContextWriter, GenerationWriter
from tts_trio.api.websocket.protocol import (
    CancelContext,
    CancelRunning,
    CloseContext,
    Command,
    CommandError,
    Context,
    Effect,
    Enqueue,
    Generation,
    Limits,
    OpenContext,
    SendMessage,
    Speak,
    WsProtocol,
    error_message,
    parse_command,
)
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioFormat
from tts_trio.audio.output import EncodedOutput
from tts_trio.errors import ApiError, ContextIdle, Overloaded, ShuttingDown
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.captions import SentenceCaptions
from tts_trio.synthesis.params import GenerateParams
from tts_trio.synthesis.pipeline import ScriptItem, SynthesisJob, open_audio_stream
from tts_trio.synthesis.relay import Relay, Writer
from tts_trio.synthesis.service import TtsService

log = logging.getLogger(__name__)
blueprint = Blueprint("websocket", __name__)

#: Put in a context's sentence channel by a ``flush`` with nothing to speak (a sentence is never empty).
_KEEP_ALIVE = ""


class ClientStalled(Exception):
    """Raised when a send to the client did not complete in time; the socket is dropped."""


@attrs.define
class _ContextTask:
    """The I/O side of a context: where its sentences go and the scope that cancels it."""

    sentences: trio.MemorySendChannel[str | ScriptItem]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


class ContextFraming(Writer[str], Protocol):
    """A context's framing on the socket; ``start`` is the message before its audio (None: nothing)."""

    def start(self, choice: EncodingChoice, source: AudioFormat) -> str | None: ...


class Dialect(Protocol):
    """What one socket's messages look like: ours, or another API's (:mod:`tts_trio.api.dialects`).

    The session's tasks and rules (:class:`WsProtocol`) are the same for
    every dialect; only the wire differs. ``commands`` turns one client
    message into our commands (it may consult the protocol's open contexts;
    a dict is a message to send as it is), raising :class:`ApiError` or
    :class:`CommandError`; ``outgoing`` rewrites (or drops, with None) a
    message the protocol sends; ``error`` shapes a refusal; ``label`` names
    the protocol in the metrics.
    """

    label: str

    def commands(self, message: str | bytes | None, protocol: WsProtocol) -> Sequence[Command | dict[str, Any]]: ...

    def context_writer(self, context: Context) -> ContextFraming: ...

    def outgoing(self, payload: dict[str, Any]) -> dict[str, Any] | None: ...

    def error(self, error: ApiError, ids: dict[str, str] | None = None) -> dict[str, Any]: ...


class OwnDialect:
    """This server's own messages (``WS /v1/tts/stream``)."""

    label = "websocket"

    def commands(self, message: str | bytes | None, protocol: WsProtocol) -> Sequence[Command | dict[str, Any]]:
        return (parse_command(message),)

    def context_writer(self, context: Context) -> ContextFraming:
        kind = context.params.captions if context.params is not None else None
        return ContextWriter(context.context_id, captioner=SentenceCaptions(kind) if kind is not None else None)

    def outgoing(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return payload

    def error(self, error: ApiError, ids: dict[str, str] | None = None) -> dict[str, Any]:
        return error_message(error, ids)


@blueprint.websocket("/v1/tts/stream")
async def stream_ws() -> None:
    await serve_session()


async def serve_session(dialect: Dialect | None = None) -> None:
    """Run this request's socket as a session that speaks ``dialect`` (ours when None)."""
    # The session keeps the connection object itself, not the context-local proxy.
    connection = websocket._get_current_object()  # type: ignore[attr-defined]
    session = _Session(connection, current_service(), current_settings(), dialect)
    await session.run(accept_subprotocol())


class _Session:
    """One WebSocket connection: a reader loop, a generation runner, a task per context."""

    def __init__(self, ws: Any, service: TtsService, settings: Settings, dialect: Dialect | None = None) -> None:
        self.ws = ws
        self.service = service
        self.settings = settings
        self.dialect: Dialect = dialect or OwnDialect()
        self.protocol = WsProtocol(
            Limits(settings.ws_max_queued, settings.max_text_chars, settings.max_sentence_chars),
            self._resolve,
            service.shutdown.check,
        )
        self._send_lock = trio.Lock()
        self._running: trio.CancelScope | None = None
        # The protocol bounds the queue; stopped generations left here are skipped by epoch.
        self._queue_send, self._queue_receive = trio.open_memory_channel[Generation](math.inf)
        self._contexts: dict[Context, _ContextTask] = {}
        self._nursery: trio.Nursery | None = None
        #: Replaced each time work ends, so the drain can wait for the socket to go idle.
        self._work_ended = trio.Event()

    def _resolve(self, params: GenerateParams) -> tuple[SynthesisJob, EncodingChoice]:
        job = self.service.job(params)
        return job, self.service.encoding(params, job)

    async def run(self, subprotocol: str | None) -> None:
        try:
            await self.ws.accept(subprotocol=subprotocol)
        except h11.LocalProtocolError:
            # The client broke its HTTP/1.1 connection during the upgrade (trailing bytes, a second
            # request): there is nobody left to accept. Its own doing, not a server error.
            log.info("the WebSocket handshake could not be completed: the client's connection is broken")
            return
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._run_generations)
                nursery.start_soon(self._close_when_drained, nursery.cancel_scope)
                while True:
                    message = await self.ws.receive()
                    try:
                        commands = self.dialect.commands(message, self.protocol)
                    except CommandError as refused:
                        await self._send_error(refused.error, refused.ids)
                        continue
                    except ApiError as error:
                        await self._send_error(error)
                        continue
                    for command in commands:
                        if isinstance(command, dict):
                            await self._send_json(command)
                            continue
                        try:
                            effects = self.protocol.handle(command)
                        except CommandError as refused:
                            await self._send_error(refused.error, refused.ids)
                            break  # the rest of the message depended on this part
                        except ApiError as error:
                            await self._send_error(error)
                            break
                        await self._apply(effects)
        except* ClientStalled:
            # Every task of the session ends with it; the socket is dropped (the client's doing).
            log.warning("dropped a WebSocket client that read nothing for %g s", self.settings.send_timeout)

    async def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, SendMessage):
                # The send lock orders a ``stopped`` after any audio send in flight;
                # what was cancelled cannot start another one.
                payload = self.dialect.outgoing(effect.payload)
                if payload is not None:
                    await self._send_json(payload)
            elif isinstance(effect, Enqueue):
                self._queue_send.send_nowait(effect.generation)
            elif isinstance(effect, CancelRunning):
                if self._running is not None:
                    self._running.cancel()
                self.service.stream_cancelled("stop")
            elif isinstance(effect, OpenContext):
                self._open_context(effect.context)
            elif isinstance(effect, Speak):
                task = self._contexts[effect.context]
                for sentence in effect.sentences or (_KEEP_ALIVE,):
                    task.sentences.send_nowait(sentence)
            elif isinstance(effect, CloseContext):
                self._contexts[effect.context].sentences.close()
            elif isinstance(effect, CancelContext):
                self._contexts[effect.context].scope.cancel()
                if effect.stopped:
                    self.service.stream_cancelled("stop")
        self._ended_work()  # a stop may have left the socket idle; the drain looks again

    def _ended_work(self) -> None:
        self._work_ended.set()
        self._work_ended = trio.Event()

    async def _close_when_drained(self, session: trio.CancelScope) -> None:
        """When the server drains, close with 1001 once the running work has ended.

        Running work ends by itself or with a ``shutting_down`` error at the
        drain deadline; queued generations are refused by admission.
        """
        await self.service.shutdown.started.wait()
        while self.protocol.busy():
            await self._work_ended.wait()
        with contextlib.suppress(ClientStalled):
            await self._locked(self.ws.close, 1001, "the server is shutting down")
        session.cancel()

    async def _admitted(self, ids: dict[str, str]) -> Place | None:
        """A stream place, or None after telling the client the server is overloaded or stopping."""
        try:
            return await self.service.admission.acquire()
        except (Overloaded, ShuttingDown) as error:
            await self._send_error(error, ids)
            return None

    # -- text-in contexts ---------------------------------------------------
    def _open_context(self, context: Context) -> None:
        # Bounded by the context's character limit, not by a message count.
        send, receive = trio.open_memory_channel[str | ScriptItem](math.inf)
        self._contexts[context] = _ContextTask(send)
        assert self._nursery is not None
        self._nursery.start_soon(self._run_context, context, receive)

    async def _run_context(self, context: Context, sentences: trio.MemoryReceiveChannel[str | ScriptItem]) -> None:
        task = self._contexts[context]
        fmt = context.job.pool.audio_format
        writer = self.dialect.context_writer(context)
        place: Place | None = None
        try:
            with task.scope:
                place = await self._admitted({"context_id": context.context_id})
                if place is None:
                    return
                start = writer.start(context.choice, fmt)
                if start is not None:
                    await self._send(start)
                with self.service.track_stream(context.job.pool):
                    async with trio.open_nursery() as nursery:
                        source = _until_idle(sentences, self.settings.context_idle_timeout)
                        receive, metrics = open_audio_stream(nursery, context.job, source)
                        relay: Relay[str | bytes] = Relay(receive, metrics, EncodedOutput(fmt, context.choice), writer)
                        await self._relay(relay)
                if relay.completed and relay.failure is None:
                    self.service.stream_finished(metrics, self.dialect.label)
        finally:
            if place is not None:
                place.release()
            task.sentences.close()
            del self._contexts[context]
            self.protocol.context_ended(context)
            self._ended_work()

    # -- generations -----------------------------------------------------
    async def _run_generations(self) -> None:
        async for generation in self._queue_receive:
            if not self.protocol.take(generation):
                continue
            try:
                with trio.CancelScope() as scope:
                    self._running = scope
                    await self._generate(generation)
            finally:
                self._running = None
                self.protocol.generation_ended(generation)
                self._ended_work()

    async def _generate(self, generation: Generation) -> None:
        place = await self._admitted({"request_id": generation.request_id})
        if place is None:
            return
        try:
            try:
                # Resolved again now: the engine may have been switched while this waited.
                job, choice = self._resolve(generation.params)
            except ApiError as error:
                await self._send_error(error, {"request_id": generation.request_id})
                return
            await self._generate_admitted(attrs.evolve(generation, job=job, choice=choice))
        finally:
            place.release()

    async def _generate_admitted(self, generation: Generation) -> None:
        fmt = generation.job.pool.audio_format
        writer = GenerationWriter.for_generation(generation)
        await self._send(writer.start(fmt))
        output = EncodedOutput(fmt, GenerationWriter.source_choice(generation.choice))
        with self.service.track_stream(generation.job.pool):
            async with trio.open_nursery() as nursery:
                receive, metrics = open_audio_stream(nursery, generation.job)
                # The encoder's tail goes out before an error too, so a compressed stream ends whole.
                relay: Relay[str | bytes] = Relay(receive, metrics, output, writer, tail_on_error=True)
                await self._relay(relay)
        self.service.stream_finished(metrics, "websocket")

    async def _relay(self, relay: Relay[str | bytes]) -> None:
        async for messages in relay.batches():
            for message in messages:
                await self._send(message)

    # -- outgoing ---------------------------------------------------------
    async def _send_error(self, error: ApiError, ids: dict[str, str] | None = None) -> None:
        """A refusal in the dialect's shape, counted by protocol; the socket stays open."""
        self.service.metrics.protocol_errors.labels(self.dialect.label, error.code).inc()
        await self._send_json(self.dialect.error(error, ids))

    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self._send(json.dumps(payload, separators=(",", ":")))

    async def _send(self, data: str | bytes) -> None:
        await self._locked(self.ws.send, data)

    async def _locked(self, sending: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one send under the lock, shielded (half a frame would corrupt the socket), within the send timeout."""
        async with self._send_lock:
            with trio.move_on_after(self.settings.send_timeout) as scope:
                scope.shield = True
                await sending(*args)
            if scope.cancelled_caught:
                raise ClientStalled("the client did not read for too long")


async def _until_idle(
    sentences: trio.MemoryReceiveChannel[str | ScriptItem], idle_seconds: float
) -> AsyncIterator[str | ScriptItem]:
    """Sentences of a context; ends it with :class:`ContextIdle` when nothing arrives for ``idle_seconds``.

    A ``flush`` with nothing held arrives as :data:`_KEEP_ALIVE` and only restarts the wait.
    """
    while True:
        with trio.move_on_after(idle_seconds) as waited:
            try:
                sentence = await sentences.receive()
            except trio.EndOfChannel:
                return
        if waited.cancelled_caught:
            raise ContextIdle(f"no text for {idle_seconds:g} s; send append, flush or end, or the context is ended")
        if sentence != _KEEP_ALIVE:
            yield sentence
