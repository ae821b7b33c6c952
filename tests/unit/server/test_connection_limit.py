"""The connection cap's start-up arithmetic: the derived cap and the warnings about kernel limits."""

from __future__ import annotations

from pathlib import Path

from tts_trio.server.connection_limit import effective_max_connections, open_files_limit, start_up_warnings
from tts_trio.settings import DEFAULT_MAX_CONNECTIONS, Settings


def test_a_given_cap_is_taken_as_is_and_zero_means_none() -> None:
    assert effective_max_connections(Settings.load({"max_connections": 7}, environ={})) == 7
    assert effective_max_connections(Settings.load({"max_connections": 0}, environ={})) == 0


def test_the_derived_cap_leaves_half_the_open_files_free() -> None:
    derived = effective_max_connections(Settings.load(environ={}))
    files = open_files_limit()
    assert 1 <= derived <= DEFAULT_MAX_CONNECTIONS
    assert files is None or derived <= max(1, files // 2)


def test_a_backlog_above_somaxconn_is_warned_of(tmp_path: Path) -> None:
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert start_up_warnings(2048, 0, somaxconn) == []
    (warning,) = start_up_warnings(8192, 0, somaxconn)
    assert "backlog 8192 exceeds net.core.somaxconn (4096)" in warning
    assert start_up_warnings(8192, 0, tmp_path / "absent") == []  # not Linux: nothing to compare with


def test_a_cap_above_the_open_files_limit_is_warned_of(tmp_path: Path) -> None:
    files = open_files_limit()
    absent = tmp_path / "absent"
    if files is None:
        assert start_up_warnings(100, 10**9, absent) == []
    else:
        (warning,) = start_up_warnings(100, files + 1, absent)
        assert f"exceeds the open-files limit ({files})" in warning
        assert start_up_warnings(100, files, absent) == []
