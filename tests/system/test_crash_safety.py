"""kill -9 in the middle of voice uploads, deletes and switches: the store stays consistent.

A real server process is killed at varying moments while it writes; the store
is then opened again (as a restart does) and every voice it lists must be
whole: metadata that parses and reference audio that matches its checksum;
nothing half-written is ever listed, and no deleted voice half-remains.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import signal
import subprocess
from pathlib import Path

import httpx
import trio

from tests.support.processes import BIN, free_port, spawn, wait_healthy
from tts_trio.voices.store import VoiceStore

REFERENCE = subprocess.run(
    ["espeak-ng", "--stdout", "A reference recording that is long enough to become a cloned voice, surely."],
    capture_output=True,
    check=True,
).stdout


def assert_consistent(root: Path) -> list[str]:
    store = VoiceStore(root)
    store.open()
    ids = []
    for voice in store.list():
        audio = store.reference_path(voice.id).read_bytes()
        assert voice.checksum == "sha256:" + hashlib.sha256(audio).hexdigest()
        ids.append(voice.id)
    leftovers = [entry.name for entry in root.iterdir() if entry.name.startswith(".trash-")]
    assert leftovers == []
    return ids


async def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = spawn([str(BIN), "serve", "--port", str(port), "--voices-path", str(root), "--slots", "1"], {})
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, process)
    return process, url


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


async def test_kill_during_uploads_and_deletes_leaves_a_consistent_store(tmp_path: Path) -> None:
    rng = random.Random(7)
    root = tmp_path / "voices"
    created = 0
    for round_number in range(6):
        process, url = await start_server(root)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                existing = assert_consistent(root) if round_number else []
                if existing and round_number % 2:
                    # Kill while deleting.
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(http.delete, f"/v1/voices/{existing[0]}")
                        await trio.sleep(rng.uniform(0, 0.02))
                        kill(process)
                        nursery.cancel_scope.cancel()
                else:
                    # Kill while uploading (sometimes before, sometimes during, sometimes after the write).
                    async def upload(name: str) -> None:
                        with contextlib.suppress(httpx.TransportError):
                            await http.post(
                                "/v1/voices/create",
                                data={"name": name},
                                files={"audio_file": ("ref.wav", REFERENCE, "audio/wav")},
                            )

                    async with trio.open_nursery() as nursery:
                        for index in range(3):
                            nursery.start_soon(upload, f"voice {round_number}-{index}")
                        await trio.sleep(rng.uniform(0.005, 0.08))
                        kill(process)
                    created += 3
        finally:
            if process.poll() is None:
                kill(process)
        assert_consistent(root)
    # A restarted server lists exactly what the store holds.
    process, url = await start_server(root)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            listed = (await http.get("/v1/voices")).json()["voices"]
        custom = sorted(voice["id"] for voice in listed if voice["kind"] == "custom")
        assert custom == sorted(assert_consistent(root))
    finally:
        kill(process)


async def test_kill_during_an_engine_switch_restarts_on_the_configured_engine(tmp_path: Path) -> None:
    root = tmp_path / "voices"
    process, url = await start_server(root)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (
            await http.post("/v1/voices/create", data={"name": "kept"}, files={"audio_file": ("r.wav", REFERENCE)})
        ).status_code == 201

        async def switch() -> None:
            with contextlib.suppress(httpx.TransportError):
                await http.post("/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "de"}})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(switch)
            await trio.sleep(0.01)
            kill(process)
    assert len(assert_consistent(root)) == 1
    process, url = await start_server(root)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            health = (await http.get("/health")).json()
            assert health["engine"] == "system"
            assert (await http.post("/v1/tts/generate", json={"text": "Back."})).status_code == 200
    finally:
        kill(process)
