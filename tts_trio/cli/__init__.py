"""The ``tts-trio`` command line: the server (``serve``) and the client commands."""

from tts_trio.cli.main import app, main

__all__ = ["app", "main"]
