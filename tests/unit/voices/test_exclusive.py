"""The directory lock: one holder at a time across threads (as across replicas), crashed holders broken."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tts_trio.voices.exclusive import LockTimeout, held


def test_one_holder_at_a_time_and_nothing_left_after(tmp_path: Path) -> None:
    inside = 0
    most = 0
    counter = tmp_path / "counter"
    counter.write_text("0")
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(25):
            with held(tmp_path, ".lock"):
                with guard:
                    inside += 1
                    most = max(most, inside)
                # An unguarded read-modify-write: only the lock keeps it from losing updates.
                value = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(value + 1))
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert counter.read_text() == str(6 * 25)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter"]


def test_a_live_holder_makes_others_wait_then_time_out(tmp_path: Path) -> None:
    with held(tmp_path, ".lock"), pytest.raises(LockTimeout), held(tmp_path, ".lock", wait=0.1):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_crashed_holders_lock_is_broken_once_stale(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    lock.mkdir()
    left = lock / "0123456789abcdef"
    left.touch()
    old = time.time() - 120
    os.utime(left, (old, old))
    with held(tmp_path, ".lock", stale=30, wait=1):
        assert [path.name for path in lock.iterdir()] != ["0123456789abcdef"]
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_lock_is_not_broken(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    lock.mkdir()
    (lock / "0123456789abcdef").touch()
    with pytest.raises(LockTimeout), held(tmp_path, ".lock", stale=30, wait=0.1):
        pass
    assert [path.name for path in lock.iterdir()] == ["0123456789abcdef"]


def test_a_holders_age_counts_from_taking_the_lock_by_the_file_systems_clock(tmp_path: Path) -> None:
    # A holder that waited long is not stale the moment it gets the lock.
    with held(tmp_path, ".lock"):
        (entry,) = (tmp_path / ".lock").iterdir()
        assert time.time() - entry.stat().st_mtime < 5
        with pytest.raises(LockTimeout), held(tmp_path, ".lock", stale=30, wait=0.05):
            pass


def test_a_lock_left_empty_is_taken(tmp_path: Path) -> None:
    (tmp_path / ".lock").mkdir()
    with held(tmp_path, ".lock", wait=0.5):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_lexicon_takes_a_new_lock_name_beside_an_old_versions_lock_file(tmp_path: Path) -> None:
    from tts_trio.voices.lexicon import Entry, Lexicon

    (tmp_path / ".lexicon.lock").write_text("")  # what a version that used flock left
    lexicon = Lexicon(tmp_path)
    lexicon.set(Entry.create("cat", spoken="kitty"))
    assert lexicon.apply("cat").text == "kitty"
