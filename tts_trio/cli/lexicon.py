"""``tts-trio lexicon list|set|delete|import|export|preview``: the server's pronunciation lexicon.

Talks to a running server over HTTP like the other client commands
(:mod:`tts_trio.cli.client`): ``--url``/``TTS_URL``, ``--api-key``/``TTS_API_KEY``
(changes need an admin key where the server has keys), the same exit codes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tts_trio.cli.client import show, table
from tts_trio.cli.shared import DEFAULT_URL, Client, JsonOption, KeyOption, UrlOption, fail

lexicon_app = typer.Typer(
    no_args_is_help=True, help="The pronunciation lexicon: list, set, delete, import or export TSV, preview."
)
TSV = "text/tab-separated-values; charset=utf-8"


def _path(word: str) -> str:
    return "/v1/lexicon/" + quote(word, safe="")


def _says(entry: dict[str, Any]) -> str:
    return f"/{entry['phonemes']}/" if "phonemes" in entry else str(entry.get("spoken", ""))


@lexicon_app.command("list")
def lexicon_list(url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Every entry: the word, what is said (phonemes between slashes), whether case matters."""
    data = Client(url, api_key).request("GET", "/v1/lexicon").json()

    def render(body: dict[str, Any]) -> None:
        if not body["entries"]:
            typer.echo("the lexicon is empty")
            return
        rows = [
            {"word": e["word"], "says": _says(e), "case": "exact" if e["case_sensitive"] else "any"}
            for e in body["entries"]
        ]
        table(rows, ["word", "says", "case"])

    show(data, as_json, render)


@lexicon_app.command("set")
def lexicon_set(
    word: Annotated[str, typer.Argument(help="The word or words (New York)")],
    spoken: Annotated[str | None, typer.Option("--spoken", help="What to say instead")] = None,
    phonemes: Annotated[str | None, typer.Option("--phonemes", help="The pronunciation in IPA")] = None,
    case_sensitive: Annotated[
        bool, typer.Option("--case-sensitive", help="Match only this spelling (US, not us)")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add or replace an entry."""
    if (spoken is None) == (phonemes is None):
        fail("give exactly one of --spoken TEXT or --phonemes IPA", 2)
    body: dict[str, Any] = {"case_sensitive": case_sensitive}
    body.update({"spoken": spoken} if spoken is not None else {"phonemes": phonemes})
    data = Client(url, api_key).request("PUT", _path(word), json=body).json()
    show(data, as_json, lambda d: typer.echo(f"{d['word']} -> {_says(d)}"))


@lexicon_app.command("delete")
def lexicon_delete(
    word: Annotated[str, typer.Argument(help="The word")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an entry."""
    data = Client(url, api_key).request("DELETE", _path(word)).json()
    show(data, as_json, lambda d: typer.echo(f"deleted {d['deleted']['word']}"))


@lexicon_app.command("import")
def lexicon_import(
    file: Annotated[Path, typer.Argument(help="A TSV file (word<TAB>spoken or word<TAB>/ipa/); '-' reads stdin")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the whole lexicon with a TSV file (all of it, or nothing when a line is bad)."""
    if str(file) == "-":
        content = sys.stdin.buffer.read()
    elif file.is_file():
        content = file.read_bytes()
    else:
        fail(f"no file {str(file)!r}", 2)
    data = Client(url, api_key).request("PUT", "/v1/lexicon", content=content, headers={"Content-Type": TSV}).json()
    show(data, as_json, lambda d: typer.echo(f"imported {d['entries']} entries"))


@lexicon_app.command("export")
def lexicon_export(
    file: Annotated[Path | None, typer.Argument(help="File to write; standard output when omitted or '-'")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
) -> None:
    """Write the lexicon as TSV (what import reads)."""
    content = Client(url, api_key).request("GET", "/v1/lexicon", params={"format": "tsv"}).content
    if file is None or str(file) == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        file.write_bytes(content)


@lexicon_app.command("preview")
def lexicon_preview(
    text: Annotated[str, typer.Argument(help="A text")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what would be spoken for a text with the lexicon as it is now."""
    data = Client(url, api_key).request("POST", "/v1/lexicon/preview", json={"text": text}).json()

    def render(body: dict[str, Any]) -> None:
        typer.echo(body["text"])
        for warning in body["warnings"]:
            typer.echo(f"warning: {warning}", err=True)

    show(data, as_json, render)


def register(app: typer.Typer) -> None:
    """Add ``lexicon`` to the ``tts-trio`` app."""
    app.add_typer(lexicon_app, name="lexicon")
