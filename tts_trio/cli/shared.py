"""What the client commands share: options, exit codes, the HTTP client, output files, consoles, progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TimeElapsedColumn
from rich.text import Text

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3
#: Without a live display (a log, a pipe, a dumb terminal), at most one progress line this often.
PROGRESS_LINE_INTERVAL = 1.0

UrlOption = Annotated[str, typer.Option("--url", envvar="TTS_URL", help="Server address")]
KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar="TTS_API_KEY", help="API key, if the server needs one")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
# What ``say`` and ``stream`` share.
OutputOption = Annotated[str, typer.Option("-o", "--output", help="File to write, or '-' for standard output")]
VoiceOption = Annotated[str, typer.Option(help="Voice id")]
FormatOption = Annotated[str, typer.Option("--format", help="wav, pcm, mp3, opus, flac or aac")]
SpeedOption = Annotated[float, typer.Option(help="Speaking rate, 1.0 is normal")]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress display")]


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"tts-trio: {message}", err=True)
    raise typer.Exit(code)


class CommandFailed(Exception):
    """A failure to report once the progress display is gone; carries the CLI's exit code.

    Raised instead of calling :func:`fail` while a live display owns the
    terminal, so the message is not drawn over (or under) the display.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Client:
    """A thin httpx wrapper that turns failures into messages and exit codes."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(30, read=300))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            fail(f"cannot reach {self.url}: {error}", EXIT_UNREACHABLE)
        check(response)
        return response

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.stream(method, path, **kwargs)


def check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        fail(refusal(response), EXIT_REFUSED)


def refusal(response: httpx.Response) -> str:
    """The server's own words for an error response (its message and code), or the bare status."""
    try:
        error = response.json()["error"]
        return f"{error['message']} ({error['code']}, HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def close_output(sink: Any, output: str) -> None:
    """Close a file written by ``say``/``stream``; one left empty by a failure is removed."""
    if sink is sys.stdout.buffer:
        sink.flush()
        return
    empty = sink.tell() == 0
    sink.close()
    if empty:
        Path(output).unlink(missing_ok=True)


def output_name(output: str) -> str:
    return "standard output" if output == "-" else output


def make_console(*, stderr: bool = False) -> Console:
    """A console for our output: never markup, emoji or highlighting, as server text is shown verbatim.

    Reasons and names come from the server and hold brackets such as
    ``realtimetts[azure]``, which rich would otherwise take for a style. The
    width is the terminal's, else ``COLUMNS``, else 80 (rich's rules).
    """
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def _rate(seconds: float, elapsed: float) -> str:
    """Audio seconds per wall-clock second: above 1x the audio comes faster than it plays."""
    return f"{seconds / elapsed:.1f}x real time" if elapsed > 0 else "-x real time"


class _ReceivedColumn(ProgressColumn):
    """Seconds of audio so far and the rate, for the live display (the task's ``completed`` holds the seconds)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed:7.2f} s of audio received  {_rate(task.completed, elapsed):>16}")


class AudioProgress:
    """Seconds of audio received, the rate (x real time) and the elapsed time, on standard error.

    At an interactive terminal this is a live rich display that disappears at
    the end; anywhere else (a pipe, a log file, a dumb terminal, or ``live``
    off) it is plain lines, the first at once and then at most one a
    :data:`PROGRESS_LINE_INTERVAL`, so logs stay short and scripts can still
    watch for ``s of audio received``. Either way :meth:`finish` leaves one
    summary line. ``quiet`` shows nothing at all.

    Use it as a context manager around the transfer only, and report failures
    after it has exited, so no message is drawn into the live display.
    """

    def __init__(self, *, quiet: bool, live: bool = True) -> None:
        self.quiet = quiet
        self.seconds = 0.0
        self.console = make_console(stderr=True)
        self._live = live and not quiet and self.console.is_interactive
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = time.monotonic()
        self._last_line: float | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def __enter__(self) -> AudioProgress:
        self._started = time.monotonic()
        if self._live:
            # Never redirect standard output: it may be the audio itself (``-o -``).
            self._progress = Progress(
                SpinnerColumn(),
                _ReceivedColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("audio", total=None)
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def update(self, seconds: float) -> None:
        """The stream has reached ``seconds`` of audio."""
        self.seconds = seconds
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=seconds)
            return
        now = time.monotonic()
        if self._last_line is None or now - self._last_line >= PROGRESS_LINE_INTERVAL:
            self._last_line = now
            elapsed = now - self._started
            self.console.print(
                Text(f"{seconds:.2f} s of audio received, {_rate(seconds, elapsed)}, {elapsed:.2f} s elapsed"),
                soft_wrap=True,
            )

    def finish(self, output: str, note: str = "") -> None:
        """The summary line: how much audio went where, how fast; ``note`` is appended (``stopped``)."""
        if self.quiet:
            return
        elapsed = self.elapsed
        line = (
            f"{self.seconds:.2f} s of audio written to {output_name(output)} "
            f"in {elapsed:.2f} s ({_rate(self.seconds, elapsed)})"
        )
        self.console.print(Text(line + (f"; {note}" if note else "")), soft_wrap=True)
