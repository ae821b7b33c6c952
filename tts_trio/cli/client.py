"""Client commands of the ``tts-trio`` CLI: talk to a running server.

``health``, ``engines list|switch``, ``voices list|create|delete|set``,
``say`` (stream speech to a file or stdout) and ``stream`` (over the
WebSocket; Ctrl-C sends ``stop``). The server's address comes from ``--url``
or ``TTS_URL`` (default ``http://127.0.0.1:8000``), a key from ``--api-key``
or ``TTS_API_KEY``. Output is a readable table, or JSON with ``--json``.

Exit codes scripts can rely on: 0 done, 1 the server refused (its message is
shown), 2 a usage error, 3 the server could not be reached.

Tables are rich tables as wide as the terminal (else ``COLUMNS``, else 80):
long cells wrap between words, so every word of an engine's reason is shown
and no line is wider than the terminal. ``say`` shows its progress with
:class:`~tts_trio.cli.shared.AudioProgress`.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table
from rich.text import Text

from tts_trio.cli.shared import (
    DEFAULT_URL,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    AudioProgress,
    Client,
    CommandFailed,
    FormatOption,
    JsonOption,
    KeyOption,
    OutputOption,
    QuietOption,
    SpeedOption,
    UrlOption,
    VoiceOption,
    close_output,
    fail,
    make_console,
    refusal,
)

engines_app = typer.Typer(no_args_is_help=True, help="List engines or switch the current one.")
voices_app = typer.Typer(no_args_is_help=True, help="List, create, delete or choose voices.")


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as columns that fit the terminal, wrapping long cells instead of cutting them.

    Every column may wrap; rich narrows the widest first, so short columns
    (names, yes/no) stay on one line and long ones (reasons) take the rest.
    A word wider than its whole column is folded, never dropped. Trailing
    padding is stripped so piped output greps and diffs cleanly.
    """
    console = make_console()
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column.upper(), overflow="fold")
    for row in rows:
        grid.add_row(*(Text(str(row.get(column, ""))) for column in columns))
    with console.capture() as captured:
        console.print(grid)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())


def show(data: Any, as_json: bool, render: Any) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render(data)


def health(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Show the server's status."""
    data = Client(url, api_key).request("GET", "/health").json()

    def render(body: dict[str, Any]) -> None:
        slots = body["slots"]
        typer.echo(f"{body['status']}: engine {body['engine']} on {body['device']}, {body['voices']} voices")
        typer.echo(
            f"slots {slots['in_use']}/{slots['total']} in use, {slots['waiting']} waiting; "
            f"{body['active_streams']} streams; up {body['uptime_s']} s"
        )
        fleet = body.get("fleet") or {}
        if fleet.get("status") in ("converging", "diverged"):
            desired = fleet.get("desired") or {}
            reason = (fleet.get("error") or {}).get("message")
            typer.echo(
                f"fleet: {fleet['status']} (runs switch {fleet.get('generation')}, the fleet wants "
                f"{desired.get('engine')} of switch {desired.get('generation')})" + (f": {reason}" if reason else "")
            )

    show(data, as_json, render)


@engines_app.command("list")
def engines_list(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Every engine: available here or why not, loaded, current."""
    data = Client(url, api_key).request("GET", "/v1/engines").json()

    def render(body: dict[str, Any]) -> None:
        rows = [
            {
                "engine": engine["name"],
                "current": "*" if engine["current"] else "",
                "available": "yes" if engine["available"] else "no",
                "reason": engine.get("reason") or "",
            }
            for engine in body["engines"]
        ]
        table(rows, ["engine", "current", "available", "reason"])

    show(data, as_json, render)


def _config_value(text: str) -> Any:
    """KEY=VALUE values: JSON where it parses (numbers, true, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@engines_app.command("switch")
def engines_switch(
    name: Annotated[str, typer.Argument(help="Engine to make current")],
    config: Annotated[list[str] | None, typer.Option("--config", help="KEY=VALUE, repeatable")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load an engine and make it current."""
    settings: dict[str, Any] = {}
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--config takes KEY=VALUE, got {item!r}", 2)
        settings[key] = _config_value(value)
    body = {"engine_type": name, "config": settings}
    data = Client(url, api_key).request("POST", "/v1/engines/switch", json=body).json()

    def render(body: dict[str, Any]) -> None:
        typer.echo(f"engine {body['engine']} is current ({body['slots']} slots, {body['device']})")
        if body.get("generation") is not None:
            typer.echo(f"recorded as the fleet's switch {body['generation']}: replicas on this store follow it")

    show(data, as_json, render)


@voices_app.command("list")
def voices_list(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Built-in and custom voices."""
    data = Client(url, api_key).request("GET", "/v1/voices").json()

    def render(body: dict[str, Any]) -> None:
        rows = [
            {
                "id": voice["id"],
                "kind": voice["kind"],
                "name": voice["name"],
                "language": voice.get("language", ""),
                "current": "*" if voice.get("current") else "",
            }
            for voice in body["voices"]
        ]
        table(rows, ["id", "kind", "name", "language", "current"])

    show(data, as_json, render)


@voices_app.command("create")
def voices_create(
    name: Annotated[str, typer.Argument(help="A name for the voice")],
    file: Annotated[Path, typer.Argument(help="Reference recording (3-30 s; wav, mp3, flac, ogg, ...)")],
    language: Annotated[str, typer.Option(help="Language of the recording")] = "en",
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a custom voice from a recording."""
    if not file.is_file():
        fail(f"no file {str(file)!r}", 2)
    with file.open("rb") as handle:
        response = Client(url, api_key).request(
            "POST",
            "/v1/voices/create",
            data={"name": name, "language": language},
            files={"audio_file": (file.name, handle)},
        )
    data = response.json()
    show(data, as_json, lambda d: typer.echo(f"created {d['id']} ({d['name']}, {d['duration']} s)"))


@voices_app.command("delete")
def voices_delete(
    voice_id: Annotated[str, typer.Argument(help="Voice id")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a custom voice."""
    data = Client(url, api_key).request("DELETE", f"/v1/voices/{voice_id}").json()
    show(data, as_json, lambda d: typer.echo(f"deleted {d['deleted']}; current voice: {d['current']}"))


@voices_app.command("set")
def voices_set(
    voice_id: Annotated[str, typer.Argument(help="Voice id, or default")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a voice the current one."""
    data = Client(url, api_key).request("POST", f"/v1/voices/{voice_id}/set").json()
    show(data, as_json, lambda d: typer.echo(f"current voice: {d['current']}"))


def say(
    text: Annotated[str | None, typer.Argument(help="Text to speak; '-' or nothing reads standard input")] = None,
    output: OutputOption = "speech.wav",
    voice: VoiceOption = "default",
    audio_format: FormatOption = "wav",
    speed: SpeedOption = 1.0,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    quiet: QuietOption = False,
) -> None:
    """Speak text into a file as it streams in, showing the audio received and how fast it comes."""
    if text is None or text == "-":
        text = sys.stdin.read()
    client = Client(url, api_key)
    params = {
        "text": text,
        "voice_id": voice,
        "output_format": audio_format,
        "speed": str(speed),
        "chunk_size": "65536",
    }
    sink = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115 - closed below
    progress = AudioProgress(quiet=quiet)
    try:
        with progress:
            _receive_speech(client, params, sink, progress)
    except CommandFailed as error:
        fail(str(error), error.exit_code)
    finally:
        close_output(sink, output)
    progress.finish(output)


def _receive_speech(client: Client, params: dict[str, str], sink: Any, progress: AudioProgress) -> None:
    """Write the SSE stream's audio into ``sink``; raise :class:`CommandFailed` for the display to report."""
    try:
        with client.stream("GET", "/v1/tts/stream-sse", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise CommandFailed(refusal(response), EXIT_REFUSED)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event == "audio":
                        sink.write(base64.b64decode(data["chunk"]))
                    elif event == "timings":
                        progress.update(float(data["end"]))
                    elif event == "error":
                        raise CommandFailed(f"{data['message']} ({data['code']})", EXIT_REFUSED)
    except httpx.TransportError as error:
        raise CommandFailed(f"cannot reach {client.url}: {error}", EXIT_UNREACHABLE) from None


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``tts-trio`` app."""
    app.command()(health)
    app.command()(say)
    app.add_typer(engines_app, name="engines")
    app.add_typer(voices_app, name="voices")
