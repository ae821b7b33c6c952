"""The ``tts-trio`` command (typer): ``serve`` starts the server, the other commands talk to one.

``serve`` is in :mod:`tts_trio.cli.serve`, ``stream`` in
:mod:`tts_trio.cli.stream`, ``lexicon`` in :mod:`tts_trio.cli.lexicon`, the
other client commands in :mod:`tts_trio.cli.client`; this module only puts them together.
"""

from __future__ import annotations

import typer

from tts_trio import __version__
from tts_trio.cli import client, lexicon
from tts_trio.cli.serve import serve
from tts_trio.cli.stream import stream

app = typer.Typer(no_args_is_help=True, add_completion=False, help="tts-trio: a streaming text-to-speech server.")


@app.callback()
def main_callback() -> None:
    """tts-trio: a streaming text-to-speech server on Trio and Hypercorn."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


app.command()(serve)
client.register(app)
lexicon.register(app)
app.command()(stream)


def main() -> None:
    app(prog_name="tts-trio")


if __name__ == "__main__":
    main()
