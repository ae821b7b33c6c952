"""Serve on glibc's allocator, so the memory of a connection peak goes back to the system.

Python's own small-object allocator (pymalloc) carves objects out of 1 MiB
arenas and unmaps an arena only when every object in it is gone. A peak of
3,000 WebSockets spreads its objects over ~140 extra arenas; once the
peak is over a few thousand objects that outlive it (a trio deadline heap
that is pruned lazily, metrics children, caches that fill on first use)
are scattered across them, each keeping its arena. Measured after rounds
of 3,000 WebSockets: the objects alive were back to their idle 41 MB, yet
177 arenas (177 MB) were still mapped, 125 MB of them empty pools. No call
gives those pages back.

With ``PYTHONMALLOC=malloc`` every object lives in glibc's heap instead,
and ``malloc_trim(0)`` (:mod:`tts_trio.server.memory`) returns every free
page of it, wherever it lies: the same rounds settled at 101 to 113 MB
against 83 MB idle, where pymalloc stayed at 223 to 240 MB. Pong latency
with 1,000 sockets and the CPU per streamed paragraph were within the
run-to-run noise of pymalloc.

The allocator is chosen when the interpreter starts, before any of our
code runs, so ``tts-trio serve`` starts itself again (``os.execve``: same
process, same PID, same arguments) with ``PYTHONMALLOC=malloc`` added to
its environment. It does nothing when ``PYTHONMALLOC`` is already set
(``PYTHONMALLOC=pymalloc`` keeps Python's default), for any other command,
and where the C library has no ``malloc_trim`` (musl, macOS), which is what
would give the memory back. The container image sets the variable itself,
so it starts once; under ``hypercorn tts_trio.asgi:app`` set it yourself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from tts_trio.server.memory import find_malloc_trim

VARIABLE = "PYTHONMALLOC"
ALLOCATOR = "malloc"


def restart_command(argv: Sequence[str], environ: Mapping[str, str], *, can_trim: bool) -> list[str] | None:
    """The command line to start ``tts-trio`` again on glibc's allocator, or None to go on as it is.

    ``argv`` is ``sys.argv``; only ``serve`` (the first argument that is
    not an option) is restarted, and only when ``PYTHONMALLOC`` is unset
    and the C library can trim (``can_trim``), and not under ``python -E``
    or ``-I``, which would ignore the variable. The new process runs
    ``python -m tts_trio`` with the same arguments and interpreter flags.
    """
    if VARIABLE in environ or not can_trim or sys.flags.ignore_environment:
        return None
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if command != "serve":
        return None
    return [sys.executable, *_interpreter_flags(), "-m", "tts_trio", *argv[1:]]


def _interpreter_flags() -> list[str]:
    """``-X`` options and warning filters the interpreter was started with (``python -X dev -m ...``)."""
    flags = [f"-W{option}" for option in sys.warnoptions]
    for name, value in sys._xoptions.items():
        flags.append(f"-X{name}" if value is True else f"-X{name}={value}")
    return flags


def serve_on_glibc_allocator() -> None:
    """Replace this process with ``tts-trio serve`` on glibc's allocator when :func:`restart_command` says so."""
    command = restart_command(sys.argv, os.environ, can_trim=find_malloc_trim() is not None)
    if command is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, VARIABLE: ALLOCATOR})


def current_allocator() -> str:
    """The allocator this interpreter runs on (``pymalloc``, ``malloc``, ...), for the start-up log."""
    return os.environ.get(VARIABLE) or "pymalloc"
