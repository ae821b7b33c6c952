"""When ``tts-trio`` restarts itself on glibc's allocator: ``serve`` only, never twice, never against the user."""

from __future__ import annotations

import sys

import pytest

from tts_trio.server.allocator import restart_command

SCRIPT = "/venv/bin/tts-trio"


@pytest.mark.parametrize(
    ("argv", "orig_argv"),
    [
        # The console script: the interpreter ran the script file.
        ([SCRIPT, "serve"], ["/venv/bin/python", SCRIPT, "serve"]),
        ([SCRIPT, "serve", "--port", "8001"], ["/venv/bin/python", SCRIPT, "serve", "--port", "8001"]),
        # python -u -X dev -m tts_trio serve: the module, with its interpreter flags.
        (["/src/tts_trio/__main__.py", "serve"], ["python3", "-u", "-X", "dev", "-m", "tts_trio", "serve"]),
    ],
)
def test_serve_starts_again_exactly_as_it_was_started(argv: list[str], orig_argv: list[str]) -> None:
    command = restart_command(argv, orig_argv, {}, can_trim=True)
    assert command == [sys.executable, *orig_argv[1:]]


@pytest.mark.parametrize(
    "argv",
    [
        [SCRIPT],
        [SCRIPT, "--help"],
        [SCRIPT, "say", "serve"],  # "serve" as the text to say, not the command
        [SCRIPT, "engines", "list"],
        [SCRIPT, "version"],
    ],
)
def test_other_commands_run_as_they_are(argv: list[str]) -> None:
    assert restart_command(argv, ["python", *argv], {}, can_trim=True) is None


@pytest.mark.parametrize("value", ["malloc", "pymalloc", "debug"])
def test_an_allocator_already_chosen_is_kept(value: str) -> None:
    """The restarted process has ``PYTHONMALLOC`` set, so this is also what stops a second restart."""
    argv = [SCRIPT, "serve"]
    assert restart_command(argv, ["python", *argv], {"PYTHONMALLOC": value}, can_trim=True) is None


def test_no_restart_where_the_c_library_cannot_trim_or_the_variable_would_be_ignored() -> None:
    argv = [SCRIPT, "serve"]
    assert restart_command(argv, ["python", *argv], {}, can_trim=False) is None
    assert restart_command(argv, ["python", "-I", *argv], {}, can_trim=True, ignores_environment=True) is None
