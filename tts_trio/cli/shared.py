"""What the client commands share: options, exit codes, the HTTP client and output files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3

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
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        message = f"{error['message']} ({error['code']}, HTTP {response.status_code})"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}"
    fail(message, EXIT_REFUSED)


def close_output(sink: Any, output: str) -> None:
    """Close a file written by ``say``/``stream``; one left empty by a failure is removed."""
    if sink is sys.stdout.buffer:
        sink.flush()
        return
    empty = sink.tell() == 0
    sink.close()
    if empty:
        Path(output).unlink(missing_ok=True)
