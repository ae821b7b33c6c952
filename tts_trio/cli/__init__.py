"""The ``tts-trio`` command line: the server (``serve``) and the client commands."""

from __future__ import annotations


def main() -> None:
    """The ``tts-trio`` command (the console script and ``python -m tts_trio``).

    ``serve`` first restarts itself on glibc's allocator where that lets a
    connection peak's memory go back (:mod:`tts_trio.server.allocator`). The
    check comes before the commands' modules are imported, so the restart
    costs one interpreter start, not two start-ups of the whole command line.
    """
    from tts_trio.server.allocator import serve_on_glibc_allocator

    serve_on_glibc_allocator()
    from tts_trio.cli.main import main as run_command

    run_command()
