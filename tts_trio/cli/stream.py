"""``tts-trio stream``: speak text over the server's WebSocket as it is written.

The text (an argument, or standard input line by line as it arrives, so
``llm ... | tts-trio stream -o -`` speaks while the model writes) goes into
one text-in context (see docs/streaming-input.md); the context's audio is one
continuous stream in the chosen format, written to a file or standard output
as it comes. Ctrl-C sends ``stop``, waits for the server's ``stopped`` (after
which no more audio of the context can come), closes the socket normally and
exits with 130 (143 for SIGTERM), so the server stops synthesizing at once
and the file holds exactly what was spoken until then.

Progress (seconds of audio, x real time, elapsed) is
:class:`~tts_trio.cli.shared.AudioProgress`: a live display at a terminal,
plain lines elsewhere, and as plain lines too while the text is typed at the
terminal, where a redrawn display would overwrite what is being typed.
"""

from __future__ import annotations

import base64
import json
import signal
import ssl
import struct
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any, BinaryIO

import attrs
import trio
import typer
from trio_websocket import (
    ConnectionClosed,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from tts_trio.cli.shared import (
    DEFAULT_URL,
    AudioProgress,
    CommandFailed,
    FormatOption,
    KeyOption,
    OutputOption,
    QuietOption,
    SpeedOption,
    UrlOption,
    VoiceOption,
    close_output,
    fail,
)

#: Exit status after Ctrl-C or SIGTERM, as shells report a command ended by that signal.
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
CONTEXT_ID = "cli"
#: How long to wait for ``stopped`` after Ctrl-C before giving up on the server.
STOP_TIMEOUT = 5.0
#: While waiting for typed lines, a ``flush`` this often keeps the context open (the server ends
#: a context that hears nothing for 60 s).
KEEP_ALIVE_INTERVAL = 20.0


class StreamFailed(CommandFailed):
    """The server refused or could not be reached; carries the CLI's exit code."""


@attrs.frozen
class StreamRequest:
    url: str
    api_key: str | None
    voice: str
    output_format: str
    speed: float
    #: Speak what each line holds when it ends, even mid-sentence (typing at a terminal).
    flush_lines: bool


def websocket_url(url: str) -> str:
    """``http(s)://host`` -> ``ws(s)://host/v1/tts/stream``."""
    base = url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/v1/tts/stream"


async def stdin_lines() -> AsyncIterator[str]:
    """Lines of standard input as they arrive (a blocking read in a thread the process may leave behind)."""
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        yield line


async def one_text(text: str) -> AsyncIterator[str]:
    yield text


@attrs.define
class _Progress:
    seconds: float = 0.0
    #: The signal that stopped the stream, if one did.
    interrupted_by: signal.Signals | None = None

    @property
    def interrupted(self) -> bool:
        return self.interrupted_by is not None


async def run_stream(
    request: StreamRequest,
    text: AsyncIterator[str],
    sink: BinaryIO,
    on_progress: Any,
) -> _Progress:
    """Speak ``text`` into ``sink``; return what happened (raises :class:`StreamFailed`)."""
    headers = [(b"authorization", f"Bearer {request.api_key}".encode())] if request.api_key else []
    url = websocket_url(request.url)
    context = ssl.create_default_context() if url.startswith("wss://") else None
    progress = _Progress()
    try:
        async with (
            open_websocket_url(url, ssl_context=context, extra_headers=headers) as ws,
            trio.open_nursery() as nursery,
        ):
            interrupted = trio.Event()
            nursery.start_soon(_watch_interrupt, interrupted, progress)
            opened, ended = trio.Event(), trio.Event()
            nursery.start_soon(_send_text, ws, request, text, interrupted, opened, ended)
            nursery.start_soon(_stop_when_interrupted, ws, interrupted, nursery.cancel_scope)
            if request.flush_lines:
                nursery.start_soon(_keep_alive, ws, opened, ended, interrupted)
            await _receive(ws, sink, progress, on_progress)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _explain(_first_leaf(group), request, url) from None
    except Exception as error:
        raise _explain(error, request, url) from None
    return progress


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in a (nested) group that is not a Cancelled; the group if there is none."""
    for error in group.exceptions:
        leaf = _first_leaf(error) if isinstance(error, BaseExceptionGroup) else error
        if not isinstance(leaf, (trio.Cancelled, BaseExceptionGroup)):
            return leaf
    return group


def _explain(error: BaseException, request: StreamRequest, url: str) -> BaseException:
    """The :class:`StreamFailed` a person understands for what went wrong, or ``error`` itself."""
    if isinstance(error, StreamFailed):
        return error
    if isinstance(error, ConnectionTimeout):
        return StreamFailed(f"cannot reach {request.url}: no answer", 3)
    if isinstance(error, HandshakeError) and isinstance(error.__cause__, OSError):
        return StreamFailed(f"cannot reach {request.url}: {error.__cause__}", 3)
    if isinstance(error, HandshakeError):
        return StreamFailed(f"cannot open a WebSocket at {url}: {_handshake_reason(error)}", 1)
    if isinstance(error, ConnectionClosed):
        return StreamFailed(f"the server closed the connection ({error.reason})", 1)
    if isinstance(error, (OSError, trio.BrokenResourceError)):
        return StreamFailed(f"cannot reach {request.url}: {error}", 3)
    return error


def _handshake_reason(error: HandshakeError) -> str:
    body = getattr(error, "body", None)
    status = getattr(error, "status_code", None)
    try:
        detail = json.loads(body or b"")["error"]
        return f"{detail['message']} ({detail['code']}, HTTP {status})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}" if status else str(error)


async def _watch_interrupt(interrupted: trio.Event, progress: _Progress) -> None:
    """Turn the first Ctrl-C (or SIGTERM) into a stop; later ones are absorbed while it is answered."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not interrupted.is_set():
                progress.interrupted_by = signal.Signals(signum)
                interrupted.set()


async def _send_text(
    ws: WebSocketConnection,
    request: StreamRequest,
    text: AsyncIterator[str],
    stop: trio.Event,
    opened: trio.Event,
    ended: trio.Event,
) -> None:
    options = {"voice_id": request.voice, "output_format": request.output_format, "speed": request.speed}
    first = True
    async for piece in text:
        if stop.is_set():
            return
        if not piece.strip():
            continue
        message: dict[str, Any] = {"action": "append", "context_id": CONTEXT_ID, "text": piece}
        if first:
            message.update(options)
            first = False
        await ws.send_message(json.dumps(message))
        opened.set()
        if request.flush_lines:
            await ws.send_message(json.dumps({"action": "flush", "context_id": CONTEXT_ID}))
    if first:
        raise StreamFailed("no text to speak", 2)
    if not stop.is_set():
        ended.set()
        await ws.send_message(json.dumps({"action": "end", "context_id": CONTEXT_ID}))


async def _keep_alive(ws: WebSocketConnection, opened: trio.Event, ended: trio.Event, stop: trio.Event) -> None:
    """Keep the context open between typed lines, from its first ``append`` until ``end`` or ``stop``."""
    await opened.wait()
    while True:
        await trio.sleep(KEEP_ALIVE_INTERVAL)
        if ended.is_set() or stop.is_set():
            return
        await ws.send_message(json.dumps({"action": "flush", "context_id": CONTEXT_ID}))


async def _stop_when_interrupted(ws: WebSocketConnection, interrupted: trio.Event, session: trio.CancelScope) -> None:
    await interrupted.wait()
    await ws.send_message(json.dumps({"action": "stop"}))
    # The receive loop ends at ``stopped``; a server that never answers is left behind.
    await trio.sleep(STOP_TIMEOUT)
    session.cancel()


async def _receive(ws: WebSocketConnection, sink: BinaryIO, progress: _Progress, on_progress: Any) -> None:
    while True:
        message = json.loads(await ws.get_message())
        kind = message.get("type")
        if kind == "audio":
            sink.write(base64.b64decode(message["chunk"]))
        elif kind == "timings":
            progress.seconds = float(message["end"])
            on_progress(progress.seconds)
        elif kind in ("done", "stopped"):  # stopped: no audio of the context can follow
            return
        elif kind == "error":
            raise StreamFailed(f"{message['message']} ({message['code']})", 1)


def finish_wav(sink: BinaryIO) -> None:
    """Write the real sizes into a streamed WAV file's header (the stream's header leaves them open).

    Only for seekable files; players read the open-ended header too, this just
    makes the file strictly valid for tools that check.
    """
    try:
        size = sink.seek(0, 2)
        sink.seek(0)
        header = sink.read(44)
    except (OSError, ValueError):
        return
    if size < 44 or header[:4] != b"RIFF" or header[8:12] != b"WAVE" or header[36:40] != b"data":
        return
    sink.seek(4)
    sink.write(struct.pack("<I", size - 8))
    sink.seek(40)
    sink.write(struct.pack("<I", size - 44))
    sink.seek(0, 2)


def stream(
    text: Annotated[
        str | None, typer.Argument(help="Text to speak; '-' or nothing reads standard input line by line")
    ] = None,
    output: OutputOption = "speech.wav",
    voice: VoiceOption = "default",
    audio_format: FormatOption = "wav",
    speed: SpeedOption = 1.0,
    flush_lines: Annotated[
        bool | None,
        typer.Option(
            "--flush-lines/--no-flush-lines",
            help="Speak each input line when it ends, even mid-sentence [default: when typing at a terminal]",
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    quiet: QuietOption = False,
) -> None:
    """Speak over the WebSocket as text arrives; Ctrl-C stops the synthesis at once and exits 130."""
    from_stdin = text is None or text == "-"
    request = StreamRequest(
        url=url,
        api_key=api_key,
        voice=voice,
        output_format=audio_format,
        speed=speed,
        flush_lines=flush_lines if flush_lines is not None else from_stdin and sys.stdin.isatty(),
    )
    source = stdin_lines() if from_stdin else one_text(text or "")
    sink: BinaryIO = sys.stdout.buffer if output == "-" else open(output, "w+b")  # noqa: SIM115 - closed below
    display = AudioProgress(quiet=quiet, live=not (from_stdin and sys.stdin.isatty()))
    try:
        with display:
            progress = trio.run(run_stream, request, source, sink, display.update)
    except StreamFailed as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:  # before the signal handler was in place: nothing was sent
        raise typer.Exit(EXIT_STATUS[signal.SIGINT]) from None
    finally:
        if sink is not sys.stdout.buffer and audio_format == "wav":
            finish_wav(sink)
        close_output(sink, output)
    display.finish(output, "stopped" if progress.interrupted else "")
    if progress.interrupted_by is not None:
        raise typer.Exit(EXIT_STATUS[progress.interrupted_by])
