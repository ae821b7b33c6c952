"""Voice names unique across processes: two stores on one real directory, as two replicas have.

Each ``VoiceStore`` below stands for one server process: nothing is shared
between them but the directory (no lock, no memory), as between replicas on
one shared volume.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tts_trio.errors import VoiceExists
from tts_trio.voices.claims import CLAIMS_DIR, claim_key, name_key
from tts_trio.voices.store import STALE_SECONDS, VoiceStore

WAV = b"RIFF" + b"\x00" * 4096


def replicas(root: Path, count: int = 2) -> list[VoiceStore]:
    stores = [VoiceStore(root) for _ in range(count)]
    for store in stores:
        store.open()
    return stores


def create(store: VoiceStore, name: str) -> str:
    return store.create(name=name, language="en", engine="system", wav=WAV, duration=5.0, source_format="wav").id


def claim_dir(root: Path, name: str) -> Path:
    return root / CLAIMS_DIR / claim_key(name)


def test_a_name_taken_on_one_replica_is_taken_on_the_other(tmp_path: Path) -> None:
    first, second = replicas(tmp_path)
    voice = create(first, "Narrator")
    with pytest.raises(VoiceExists):
        create(second, "narrator")
    assert os.listdir(claim_dir(tmp_path, "Narrator")) == [voice]
    assert json.loads((claim_dir(tmp_path, "Narrator") / voice).read_text()) == {"id": voice, "name": "Narrator"}


def test_a_name_is_claimed_before_the_voice_is_visible(tmp_path: Path) -> None:
    """The race itself, made certain: replica B creates while replica A sits between claim and commit."""
    root = tmp_path
    in_commit, go_on = threading.Event(), threading.Event()

    class Paused(VoiceStore):
        def _commit(self, staging: Path, final: Path) -> None:
            in_commit.set()
            assert go_on.wait(10)
            super()._commit(staging, final)

    paused = Paused(root)
    paused.open()
    (other,) = replicas(root, 1)
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(create(paused, "Racer")))
    thread.start()
    assert in_commit.wait(10)
    assert other.list() == []  # nothing visible yet, so a listing check alone would let B in
    with pytest.raises(VoiceExists):
        create(other, "RACER")
    go_on.set()
    thread.join()
    assert [voice.id for voice in other.list()] == results


def test_concurrent_creates_of_one_name_on_many_replicas_give_one_voice(tmp_path: Path) -> None:
    stores = replicas(tmp_path, 6)
    for round_number in range(10):
        name = f"contested {round_number}"
        barrier = threading.Barrier(len(stores))
        won: list[str] = []
        lost: list[VoiceExists] = []

        def attempt(
            store: VoiceStore,
            name: str = name,
            barrier: threading.Barrier = barrier,
            won: list[str] = won,
            lost: list[VoiceExists] = lost,
        ) -> None:
            barrier.wait()
            try:
                won.append(create(store, name))
            except VoiceExists as error:
                lost.append(error)

        threads = [threading.Thread(target=attempt, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1 and len(lost) == len(stores) - 1
    names = [voice.name for voice in stores[0].list()]
    assert sorted(names) == sorted(f"contested {n}" for n in range(10))


def test_delete_frees_the_name_for_every_replica(tmp_path: Path) -> None:
    first, second = replicas(tmp_path)
    voice = create(first, "Reused")
    second.delete(voice)
    assert not (tmp_path / CLAIMS_DIR).exists()  # the last claim gone, nothing of it is left
    again = create(first, "reused")
    assert again != voice
    with pytest.raises(VoiceExists):
        create(second, "Reused")
    first.delete(again)
    create(second, "REUSED")


def test_a_stale_claim_is_reclaimed(tmp_path: Path) -> None:
    """A crash between claim and commit (or a delete that stopped before releasing) blocks no name."""
    first, second = replicas(tmp_path)
    stale = claim_dir(tmp_path, "Orphan")
    stale.mkdir(parents=True)
    (stale / "v_00000000000000aa").write_text("{}")  # a claim whose voice never came to be
    voice = create(second, "orphan")
    assert os.listdir(stale) == [voice]
    with pytest.raises(VoiceExists):
        create(first, "Orphan")


def test_a_claim_whose_voice_is_being_written_is_not_stale(tmp_path: Path) -> None:
    (store,) = replicas(tmp_path, 1)
    claim = claim_dir(tmp_path, "Busy")
    claim.mkdir(parents=True)
    (claim / "v_00000000000000bb").write_text("{}")
    staging = tmp_path / ".tmp-v_00000000000000bb"
    staging.mkdir()  # another replica writes this voice right now
    with pytest.raises(VoiceExists):
        create(store, "busy")
    # The same staging directory, long abandoned: a crash; the name is free again.
    old = time.time() - STALE_SECONDS - 1
    os.utime(staging, (old, old))
    create(store, "busy")


def test_start_up_clears_stale_claims_and_claims_voices_from_before_claims(tmp_path: Path) -> None:
    (store,) = replicas(tmp_path, 1)
    legacy = create(store, "Legacy")
    kept = create(store, "Kept")
    # A store written before claims existed: remove the claims; one stale claim is left over.
    for entry in (tmp_path / CLAIMS_DIR).iterdir():
        (entry / os.listdir(entry)[0]).unlink()
        entry.rmdir()
    stale = claim_dir(tmp_path, "Gone")
    stale.mkdir()
    (stale / "v_00000000000000cc").write_text("{}")
    pending = tmp_path / CLAIMS_DIR / ".tmp-v_00000000000000dd"
    pending.mkdir()
    old = time.time() - STALE_SECONDS - 1
    os.utime(pending, (old, old))
    (restarted,) = replicas(tmp_path, 1)
    assert not stale.exists() and not pending.exists()
    assert os.listdir(claim_dir(tmp_path, "Legacy")) == [legacy]
    assert os.listdir(claim_dir(tmp_path, "Kept")) == [kept]
    with pytest.raises(VoiceExists):
        create(restarted, "LEGACY")


def test_a_voice_without_a_claim_still_blocks_its_name(tmp_path: Path) -> None:
    (store,) = replicas(tmp_path, 1)
    create(store, "Unclaimed")
    for entry in (tmp_path / CLAIMS_DIR).iterdir():
        (entry / os.listdir(entry)[0]).unlink()
    with pytest.raises(VoiceExists):
        create(store, "unclaimed")  # the listing check covers a store from before claims


@pytest.mark.parametrize(
    ("stored", "requested"),
    [
        ("Straße", "STRASSE"),  # casefolding
        ("Café", "Cafe\u0301"),  # composed and decomposed é are one name
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),
        ("../../etc/passwd", "../../ETC/PASSWD"),  # any character: the claim name is a digest
        ("nul\x00byte/" + "x" * 300, "NUL\x00BYTE/" + "X" * 300),  # and any length
    ],
)
def test_names_compare_casefolded_and_normalized(tmp_path: Path, stored: str, requested: str) -> None:
    first, second = replicas(tmp_path)
    create(first, stored)
    assert name_key(stored) == name_key(requested)
    with pytest.raises(VoiceExists):
        create(second, requested)
    assert {entry.name for entry in (tmp_path / CLAIMS_DIR).iterdir()} == {claim_key(stored)}
    assert len(claim_key(stored)) == 64


def test_different_names_do_not_collide(tmp_path: Path) -> None:
    first, second = replicas(tmp_path)
    create(first, "Anna")
    create(second, "Anne")
    create(second, "Anna 2")
    assert len(first.list()) == 3


def test_a_failed_write_releases_the_name(tmp_path: Path) -> None:
    class Failing(VoiceStore):
        def _commit(self, staging: Path, final: Path) -> None:
            raise OSError(5, "I/O error")

    failing = Failing(tmp_path)
    failing.open()
    with pytest.raises(OSError):
        create(failing, "Unlucky")
    assert not claim_dir(tmp_path, "Unlucky").exists()
    (other,) = replicas(tmp_path, 1)
    create(other, "unlucky")
