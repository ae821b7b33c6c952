"""The fleet's desired-engine record: whole or absent, generations counted, bad files ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.disk import Disk
from tts_trio.errors import InsufficientStorage, StoreReadOnly
from tts_trio.voices.desired_engine import FILE_NAME, read_desired, record_desired
from tts_trio.voices.store import VoiceStore


def test_nothing_recorded_reads_as_none(tmp_path: Path) -> None:
    assert read_desired(tmp_path) is None


def test_each_switch_counts_one_generation_and_gets_its_own_id(tmp_path: Path) -> None:
    first = record_desired(tmp_path, "system", {"voice": "en-gb"})
    second = record_desired(tmp_path, "piper", {})
    assert (first.generation, second.generation) == (1, 2)
    assert first.id != second.id
    assert read_desired(tmp_path) == second
    # Nothing staged is left beside the record.
    assert [path.name for path in tmp_path.iterdir()] == [FILE_NAME]


def test_a_record_on_disk_is_plain_json_an_operator_can_read(tmp_path: Path) -> None:
    record = record_desired(tmp_path, "system", {"voice": "en-gb"})
    on_disk = json.loads((tmp_path / FILE_NAME).read_text())
    assert on_disk["engine"] == "system" and on_disk["config"] == {"voice": "en-gb"}
    assert on_disk["generation"] == 1 and on_disk["id"] == record.id and on_disk["replica"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"generation": 0, "id": "x", "engine": "system", "config": {}, "recorded_at": "", "replica": ""}',
        b'{"generation": 1, "id": "", "engine": "system", "config": {}, "recorded_at": "", "replica": ""}',
        b'{"generation": "one", "id": "x", "engine": "system", "config": {}, "recorded_at": "", "replica": ""}',
        b" " * (70 << 10),
    ],
)
def test_a_malformed_record_is_ignored_and_the_next_switch_replaces_it(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE_NAME).write_bytes(content)
    assert read_desired(tmp_path) is None
    assert "malformed" in caplog.text
    assert record_desired(tmp_path, "system", {}).generation == 1
    assert read_desired(tmp_path) is not None


def test_a_read_only_or_full_store_answers_and_keeps_the_old_record(disk: Disk) -> None:
    root = disk.path
    old = record_desired(root, "system", {})
    disk.remount("ro")
    with pytest.raises(StoreReadOnly):
        record_desired(root, "piper", {})
    assert read_desired(root) == old
    disk.remount("rw")
    disk.fill()
    with pytest.raises(InsufficientStorage):
        record_desired(root, "piper", {"voice": "x" * 8192})
    assert read_desired(root) == old
    disk.free()
    assert sorted(path.name for path in root.iterdir()) == [FILE_NAME]


def test_the_voice_store_does_not_list_the_record_as_a_voice(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.open()
    record_desired(tmp_path, "system", {})
    assert store.list() == []
