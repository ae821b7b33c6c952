"""A full or read-only voice store is an answer, not a 500: a real server on a real small disk.

Each test mounts a tmpfs of a few MiB as the server's voice store (we run
as root here and in CI; without the right to mount, the test is skipped
and says why), then fills it or remounts it read-only under the running
server, and frees it or remounts it writable again: the server must answer
507 ``insufficient_storage`` or 503 ``store_read_only`` for every write,
leave the store exactly as it was, keep serving reads and synthesis, say
so on ``/ready`` and ``/health``, and write again without a restart.

The fixture ``no_unhandled_errors`` (tests/conftest.py) fails a test whose
server answered anything with a 500, so no ``OSError`` may escape.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.disk import Disk
from tests.support.live import start_live_server
from tts_trio.settings import Settings
from tts_trio.voices.store import READ_ONLY_RETRY_AFTER, VoiceStore


def espeak_wav(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout


#: About 5 s of speech: a valid reference recording (3 to 30 s), about 240 kB once stored.
REFERENCE = espeak_wav("Hello there, this is a reference recording of a reasonable length for voice cloning.")
#: Refused creates on the full disk: each decodes and normalizes a real upload first
#: (about 20 ms each, so all 100 take a few seconds).
FAILED_CREATES = 100


def mount_tmpfs(path: Path, size: str) -> None:
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs to mount a tmpfs as the voice store (root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount_tmpfs(mount_point, "8m")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    """Write a filler file until not one more byte fits; returns it (delete it to free the space)."""
    Disk(disk).fill()
    return disk / "filler"


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True, capture_output=True)


async def create(http: httpx.AsyncClient, name: str) -> httpx.Response:
    return await http.post(
        "/v1/voices/create", data={"name": name, "language": "en"}, files={"audio_file": ("ref.wav", REFERENCE)}
    )


def custom_voices(listing: httpx.Response) -> list[str]:
    assert listing.status_code == 200, listing.text
    return [entry["id"] for entry in listing.json()["voices"] if entry["kind"] == "custom"]


def assert_consistent(voices_path: Path, expected: list[str]) -> None:
    """Only whole voices on disk: no staging or trash left, and every voice directory is listed."""
    entries = sorted(entry.name for entry in voices_path.iterdir())
    assert [name for name in entries if name.startswith((".tmp-", ".trash-"))] == []
    assert [name for name in entries if name.startswith("v_")] == sorted(expected)
    assert sorted(voice.id for voice in VoiceStore(voices_path).list()) == sorted(expected)


@pytest.mark.timeout(180)
async def test_a_full_store_answers_507_and_recovers_when_space_returns(
    disk: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    voices_path = disk / "voices"
    settings = Settings.load({"voices_path": voices_path, "slots": 2, "max_queue_wait": 2.0}, environ={})
    server, stop = await start_live_server(nursery, settings)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            kept = await create(http, "Kept")
            assert kept.status_code == 201, kept.text
            kept_id = kept.json()["id"]
            assert (await http.post(f"/v1/voices/{kept_id}/set")).status_code in (200, 422)  # espeak cannot clone
            assert (await http.post("/v1/voices/de/set")).status_code == 200
            assert "store" not in (await http.get("/ready")).json()
            assert (await http.get("/health")).json()["store"] == "ok"

            filler = fill(disk)
            caplog.set_level(logging.WARNING)
            for index in range(FAILED_CREATES):
                refused = await create(http, f"Refused {index}")
                assert refused.status_code == 507, refused.text
                error = refused.json()["error"]
                assert error["code"] == "insufficient_storage"
                assert "full" in error["message"] and str(disk) not in error["message"]
            refused_set = await http.post("/v1/voices/default/set")
            assert (refused_set.status_code, refused_set.json()["error"]["code"]) == (507, "insufficient_storage")

            # Nothing half-written, nothing lost, the listing and the current voice as they were.
            assert_consistent(voices_path, [kept_id])
            listing = await http.get("/v1/voices")
            assert custom_voices(listing) == [kept_id]
            assert listing.json()["current"] == "de"
            assert "skipping corrupt voice entry" not in caplog.text
            # The replica still serves: ready (the store reported), and it synthesizes.
            ready = await http.get("/ready")
            assert (ready.status_code, ready.json()["store"]) == (200, "full")
            assert (await http.get("/health")).json()["store"] == "full"
            assert (await http.post("/v1/tts/generate", json={"text": "Still speaking."})).status_code == 200

            # Space returns: the same server writes again, no restart.
            filler.unlink()
            assert "store" not in (await http.get("/ready")).json()
            created = await create(http, "After")
            assert created.status_code == 201, created.text
            assert (await http.post("/v1/voices/default/set")).json() == {"current": "default"}
            assert_consistent(voices_path, [kept_id, created.json()["id"]])
            assert sorted(custom_voices(await http.get("/v1/voices"))) == sorted([kept_id, created.json()["id"]])
    finally:
        await stop()


@pytest.mark.timeout(120)
async def test_a_read_only_store_answers_503_keeps_reading_and_recovers(disk: Path, nursery: trio.Nursery) -> None:
    voices_path = disk / "voices"
    settings = Settings.load({"voices_path": voices_path, "slots": 2, "max_queue_wait": 2.0}, environ={})
    server, stop = await start_live_server(nursery, settings)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            kept = await create(http, "Kept")
            assert kept.status_code == 201, kept.text
            kept_id = kept.json()["id"]
            assert (await http.post("/v1/voices/de/set")).status_code == 200

            remount(disk, "ro")
            try:
                writes = [
                    await create(http, "Refused"),
                    await http.post("/v1/voices/default/set"),
                    await http.delete(f"/v1/voices/{kept_id}"),
                ]
                for refused in writes:
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"]["code"] == "store_read_only"
                    assert refused.headers["Retry-After"] == str(READ_ONLY_RETRY_AFTER)
                # Reads keep working, the replica stays ready and says why writes fail.
                listing = await http.get("/v1/voices")
                assert custom_voices(listing) == [kept_id]
                assert listing.json()["current"] == "de"
                ready = await http.get("/ready")
                assert (ready.status_code, ready.json()) == (
                    200,
                    {"ready": True, "engine": "system", "store": "read_only"},
                )
                assert (await http.get("/health")).json()["store"] == "read_only"
                assert (await http.post("/v1/tts/generate", json={"text": "Still speaking."})).status_code == 200
            finally:
                remount(disk, "rw")

            # Writable again: every write works, no restart.
            assert (await http.get("/ready")).json() == {"ready": True, "engine": "system"}
            created = await create(http, "After")
            assert created.status_code == 201, created.text
            assert (await http.post("/v1/voices/default/set")).json() == {"current": "default"}
            assert (await http.delete(f"/v1/voices/{kept_id}")).status_code == 200
            assert custom_voices(await http.get("/v1/voices")) == [created.json()["id"]]
            assert_consistent(voices_path, [created.json()["id"]])
    finally:
        await stop()
