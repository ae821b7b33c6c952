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
process, same PID, the same command line and interpreter flags) with
``PYTHONMALLOC=malloc`` added to its environment; this module imports only
the standard library, so the first start costs little more than a bare
interpreter. It does nothing when ``PYTHONMALLOC`` is already set
(``PYTHONMALLOC=pymalloc`` keeps Python's default), for any other command,
and where the C library has no ``malloc_trim`` (musl, macOS), which is what
would give the memory back. The container image sets the variable itself,
so it starts once; under ``hypercorn tts_trio.asgi:app`` set it yourself.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping, Sequence

VARIABLE = "PYTHONMALLOC"
ALLOCATOR = "malloc"


def find_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a function, or None where the C library has none (musl, macOS).

    Looked up among the symbols the interpreter already has loaded (the C
    library is always among them), so no ``ldconfig`` runs to find it.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


def restart_command(
    argv: Sequence[str],
    orig_argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    can_trim: bool,
    ignores_environment: bool = False,
) -> list[str] | None:
    """The command line to start ``tts-trio`` again on glibc's allocator, or None to go on as it is.

    ``argv`` is ``sys.argv`` (what the command sees), ``orig_argv`` is
    ``sys.orig_argv`` (how the interpreter was started). Only ``serve`` (the
    first argument that is not an option) is restarted, and only when
    ``PYTHONMALLOC`` is unset, the C library can trim (``can_trim``), and
    the interpreter reads its environment (not ``python -E`` or ``-I``:
    ``ignores_environment``). The new process starts exactly as this one
    did (the console script or ``-m tts_trio``, every interpreter flag), so
    it imports the same code from the same places.
    """
    if VARIABLE in environ or not can_trim or ignores_environment:
        return None
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if command != "serve":
        return None
    return [sys.executable, *orig_argv[1:]]


def serve_on_glibc_allocator() -> None:
    """Replace this process with ``tts-trio serve`` on glibc's allocator when :func:`restart_command` says so."""
    command = restart_command(
        sys.argv,
        sys.orig_argv,
        os.environ,
        can_trim=find_malloc_trim() is not None,
        ignores_environment=bool(sys.flags.ignore_environment),
    )
    if command is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, VARIABLE: ALLOCATOR})


def current_allocator() -> str:
    """The allocator this interpreter runs on (``pymalloc``, ``malloc``, ...), for the start-up log."""
    if sys.flags.ignore_environment:
        return "pymalloc"
    return os.environ.get(VARIABLE) or "pymalloc"
