"""When ``tts-trio`` restarts itself on glibc's allocator: ``serve`` only, never twice, never against the user."""

from __future__ import annotations

import sys

import pytest

from tts_trio.server.allocator import restart_command


@pytest.mark.parametrize(
    "argv",
    [
        ["tts-trio", "serve"],
        ["tts-trio", "serve", "--port", "8001", "--engine", "piper"],
        ["/venv/bin/tts-trio", "serve", "--config", "hypercorn.toml"],
    ],
)
def test_serve_restarts_as_the_module_with_the_same_arguments(argv: list[str]) -> None:
    command = restart_command(argv, {}, can_trim=True)
    assert command is not None
    assert command[0] == sys.executable
    module = command.index("-m")
    assert command[module + 1 :] == ["tts_trio", *argv[1:]]


@pytest.mark.parametrize(
    "argv",
    [
        ["tts-trio"],
        ["tts-trio", "--help"],
        ["tts-trio", "say", "serve"],  # "serve" as the text to say, not the command
        ["tts-trio", "engines", "list"],
        ["tts-trio", "version"],
    ],
)
def test_other_commands_run_as_they_are(argv: list[str]) -> None:
    assert restart_command(argv, {}, can_trim=True) is None


@pytest.mark.parametrize("value", ["malloc", "pymalloc", "debug"])
def test_an_allocator_already_chosen_is_kept(value: str) -> None:
    """The restarted process has ``PYTHONMALLOC`` set, so this is also what stops a second restart."""
    assert restart_command(["tts-trio", "serve"], {"PYTHONMALLOC": value}, can_trim=True) is None


def test_no_restart_where_the_c_library_cannot_trim() -> None:
    assert restart_command(["tts-trio", "serve"], {}, can_trim=False) is None
