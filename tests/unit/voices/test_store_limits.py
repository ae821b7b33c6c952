"""The voice store on a full or read-only disk: a clear error, nothing half-written, recovery without a restart.

The disk is real: a small tmpfs mounted for each test (we run as root here
and in CI; without the right to mount, the tests that need one are skipped
and say why). Only the errno mapping itself is checked without a disk.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.support.disk import Disk
from tts_trio.errors import ApiError, InsufficientStorage, StoreReadOnly
from tts_trio.voices.store import READ_ONLY_RETRY_AFTER, VoiceStore, store_error

WAV = b"RIFF" + b"\x00" * 200_000


def store_on(disk: Disk) -> VoiceStore:
    store = VoiceStore(disk.path / "voices")
    store.open()
    return store


def create(store: VoiceStore, name: str) -> str:
    return store.create(name=name, language="en", engine="system", wav=WAV, duration=5.0, source_format="wav").id


def hidden_entries(store: VoiceStore) -> list[str]:
    return sorted(entry.name for entry in store.root.iterdir() if entry.name.startswith(".tmp-"))


@pytest.mark.parametrize(
    ("code", "expected", "status"),
    [
        (errno.ENOSPC, InsufficientStorage, 507),
        (errno.EDQUOT, InsufficientStorage, 507),
        (errno.EROFS, StoreReadOnly, 503),
        (errno.EACCES, StoreReadOnly, 503),
        (errno.EPERM, StoreReadOnly, 503),
    ],
)
def test_storage_errnos_become_answers(code: int, expected: type[ApiError], status: int) -> None:
    answer = store_error(OSError(code, os.strerror(code), "/srv/secret/voices/.tmp-v_0"), "store the voice")
    assert isinstance(answer, expected)
    assert answer.status == status
    assert "could not store the voice" in answer.message
    assert "/srv/secret" not in answer.message  # no path reaches a client
    if expected is StoreReadOnly:
        assert answer.details == {"retry_after": READ_ONLY_RETRY_AFTER}


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOENT, errno.EISDIR])
def test_other_errors_are_no_storage_condition(code: int) -> None:
    assert store_error(OSError(code, os.strerror(code)), "store the voice") is None


def test_a_full_disk_refuses_writes_and_keeps_the_store_as_it_was(disk: Disk) -> None:
    store = store_on(disk)
    kept = create(store, "kept")
    store.set_current(kept)
    assert store.probe(len(WAV)).condition == "ok"
    disk.fill()
    assert store.probe(len(WAV)).condition == "full"
    for index in range(10):
        with pytest.raises(InsufficientStorage):
            create(store, f"refused {index}")
        with pytest.raises(InsufficientStorage):
            store.set_current(None)
        assert hidden_entries(store) == []  # the staging directory and file went with the failure
    assert [voice.id for voice in store.list()] == [kept]
    assert store.current() == kept
    # Space comes back: the same store (no restart) writes again.
    disk.free()
    assert store.probe(len(WAV)).condition == "ok"
    second = create(store, "second")
    assert {voice.id for voice in store.list()} == {kept, second}


def test_deleting_a_voice_works_on_a_full_disk(disk: Disk) -> None:
    # Deleting is how an operator (or a client) frees space: it must not need any.
    store = store_on(disk)
    victim = create(store, "victim")
    store.set_current(victim)
    disk.fill()
    store.delete(victim)
    assert store.list() == [] and store.current() is None
    assert sorted(entry.name for entry in store.root.iterdir()) in ([], [".current.json"])


def test_a_read_only_disk_refuses_writes_and_still_reads(disk: Disk) -> None:
    store = store_on(disk)
    kept = create(store, "kept")
    store.set_current(kept)
    disk.remount("ro")
    try:
        assert store.probe().condition == "read_only"
        for attempt in (lambda: create(store, "refused"), lambda: store.set_current(None), lambda: store.delete(kept)):
            with pytest.raises(StoreReadOnly) as refused:
                attempt()
            assert refused.value.details["retry_after"] == READ_ONLY_RETRY_AFTER
        # Reads keep working, and a store on a read-only disk still opens (a restart serves its voices).
        assert [voice.id for voice in store.list()] == [kept]
        assert store.current() == kept
        assert store.reference_path(kept).read_bytes() == WAV
        reopened = store_on(disk)
        assert [voice.id for voice in reopened.list()] == [kept]
    finally:
        disk.remount("rw")
    assert store.probe().condition == "ok"
    store.delete(kept)
    assert store.list() == []


def test_staging_left_by_a_disk_that_went_read_only_is_removed_by_the_next_write(disk: Disk) -> None:
    class GoesReadOnly(VoiceStore):
        def _commit(self, staging: Path, final: Path) -> None:
            disk.remount("ro")  # the disk turns read-only between the write and the rename
            super()._commit(staging, final)

    store = GoesReadOnly(disk.path / "voices")
    store.open()
    try:
        with pytest.raises(StoreReadOnly):
            create(store, "caught")
        assert len(hidden_entries(store)) == 1  # it could not be removed on a read-only disk
        assert store.list() == []
    finally:
        disk.remount("rw")
    store.set_current(None)  # any later write clears it
    assert hidden_entries(store) == []
    assert store.list() == []
