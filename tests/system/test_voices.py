"""The voice store and the voice routes: nothing lost, nothing leaked, clear errors."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.live import LiveServer, start_live_server
from tts_trio.errors import VoiceExists
from tts_trio.settings import Settings
from tts_trio.voices.store import VoiceStore


def espeak_wav(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout


REFERENCE = espeak_wav("Hello there, this is a reference recording of a reasonable length for voice cloning.")


def store_voice(store: VoiceStore, name: str) -> str:
    return store.create(
        name=name, language="en", engine="system", wav=b"RIFF-data", duration=5.0, source_format="wav"
    ).id


def test_store_persists_across_restarts(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.open()
    first = store_voice(store, "alice")
    store.set_current(first)
    again = VoiceStore(tmp_path)
    again.open()
    assert [voice.name for voice in again.list()] == ["alice"]
    assert again.current() == first
    assert again.reference_path(first).read_bytes() == b"RIFF-data"


def test_store_crash_between_write_and_rename_leaves_nothing(tmp_path: Path) -> None:
    class CrashingStore(VoiceStore):
        def _commit(self, staging: Path, final: Path) -> None:
            # Simulate the process dying after the files were written: leave the staging dir.
            raise KeyboardInterrupt

    store = CrashingStore(tmp_path)
    store.open()
    with pytest.raises(KeyboardInterrupt):
        store_voice(store, "half")
    assert store.list() == []
    # A real crash would leave the staging directory behind; start-up removes it once it is
    # stale, and leaves a fresh one alone (another process sharing the directory may be writing).
    import os
    import time

    stale = tmp_path / ".tmp-v_0123456789abcdef"
    stale.mkdir()
    (stale / "voice.json").write_text("{}")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-v_fedcba9876543210"
    fresh.mkdir()
    restarted = VoiceStore(tmp_path)
    restarted.open()
    assert restarted.list() == []
    assert not stale.exists() and fresh.exists()


def test_store_skips_corrupt_entries_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = VoiceStore(tmp_path)
    store.open()
    good = store_voice(store, "good")
    bad = tmp_path / "v_00000000000000aa"
    bad.mkdir()
    (bad / "voice.json").write_text("{not json")
    missing_audio = tmp_path / "v_00000000000000bb"
    missing_audio.mkdir()
    (missing_audio / "voice.json").write_text(json.dumps({"id": "v_00000000000000bb"}))
    (tmp_path / "not-a-voice").mkdir()
    assert [voice.id for voice in store.list()] == [good]
    assert "skipping corrupt voice entry v_00000000000000aa" in caplog.text


def test_store_names_never_become_paths(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    store.open()
    for name in ["../escape", "/etc/passwd", "nul\x00byte", "C:\\windows"]:
        store_voice(store, name)
    entries = list((tmp_path / "voices").iterdir())
    assert {entry.name.startswith("v_") for entry in entries if not entry.name.startswith(".")} == {True}
    # The names' cross-replica claims are hashes, never the names themselves.
    claims = [claim.name for claim in (tmp_path / "voices" / ".names").iterdir()]
    assert len(claims) == 4 and all(len(claim) == 64 and int(claim, 16) >= 0 for claim in claims)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["voices"]
    with pytest.raises(Exception, match="no voice"):
        store.reference_path("../escape")


def test_store_duplicate_names_and_concurrent_creates(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.open()
    store_voice(store, "Alice")
    with pytest.raises(VoiceExists):
        store_voice(store, "alice")
    threads = [threading.Thread(target=store_voice, args=(store, f"voice-{index}")) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.list()) == 9
    assert len({voice.id for voice in store.list()}) == 9


def test_deleting_the_current_voice_falls_back_to_default(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.open()
    voice = store_voice(store, "current")
    store.set_current(voice)
    store.delete(voice)
    assert store.current() is None
    assert not (tmp_path / voice).exists()
    assert not list(tmp_path.glob(".trash-*"))


async def create(
    http: httpx.AsyncClient, name: str, data: bytes = REFERENCE, filename: str = "ref.wav"
) -> httpx.Response:
    return await http.post(
        "/v1/voices/create", data={"name": name, "language": "en"}, files={"audio_file": (filename, data, "audio/wav")}
    )


async def test_voice_lifecycle_survives_a_restart(settings: Settings, nursery: trio.Nursery) -> None:
    server, stop = await start_live_server(nursery, settings)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = await create(http, "Narrator")
        assert created.status_code == 201
        voice = created.json()
        assert voice["id"].startswith("v_") and voice["kind"] == "custom"
        assert voice["sample_rate"] == 24000 and 4 < voice["duration"] < 8
        listing = (await http.get("/v1/voices")).json()
        assert voice["id"] in {entry["id"] for entry in listing["voices"]}
        assert {entry["kind"] for entry in listing["voices"]} == {"builtin", "custom"}
        # The espeak-ng engine cannot clone: using the custom voice says which engines can.
        refused = await http.post("/v1/tts/generate", json={"text": "hi", "voice_id": voice["id"]})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "voice_not_supported"
        assert (await http.post(f"/v1/voices/{voice['id']}/set")).status_code == 422
        # A built-in voice becomes the current one and applies when no voice_id is given.
        assert (await http.post("/v1/voices/de/set")).json() == {"current": "de"}
        assert server.service.resolve_voice("default") == "de"
        assert (await http.post("/v1/tts/generate", json={"text": "Hallo Welt."})).status_code == 200
        kept = await create(http, "Kept")
        assert (await http.delete(f"/v1/voices/{voice['id']}")).status_code == 200
        assert (await http.delete(f"/v1/voices/{voice['id']}")).status_code == 404
        assert (await http.delete("/v1/voices/de")).status_code == 409
    await stop()  # type: ignore[misc]
    restarted, stop_again = await start_live_server(nursery, settings)
    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=30) as http:
        listing = (await http.get("/v1/voices")).json()
        custom = [entry for entry in listing["voices"] if entry["kind"] == "custom"]
        assert [entry["id"] for entry in custom] == [kept.json()["id"]]
        assert listing["current"] == "de"
    await stop_again()  # type: ignore[misc]


async def test_voice_uploads_are_checked(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        not_audio = await create(http, "fake", data=b"this is not audio at all " * 200, filename="fake.wav")
        assert (not_audio.status_code, not_audio.json()["error"]["code"]) == (422, "invalid_audio")
        short = await create(http, "short", data=espeak_wav("Hi."))
        assert (short.status_code, short.json()["error"]["code"]) == (422, "audio_duration")
        long_audio = espeak_wav(" ".join(["This sentence is repeated to make the recording long."] * 12))
        too_long = await create(http, "long", data=long_audio)
        assert (too_long.status_code, too_long.json()["error"]["code"]) == (422, "audio_duration")
        assert (await create(http, "")).status_code == 422
        assert (await create(http, "x" * 65)).status_code == 422
        duplicate = [await create(http, "Twin"), await create(http, "twin")]
        assert [response.status_code for response in duplicate] == [201, 409]
        no_file = await http.post("/v1/voices/create", data={"name": "nofile"})
        assert no_file.status_code in (400, 422)
        listing = (await http.get("/v1/voices")).json()
        assert [entry["name"] for entry in listing["voices"] if entry["kind"] == "custom"] == ["Twin"]


async def test_concurrent_creates_with_one_name_store_one_voice(live_server: LiveServer) -> None:
    results: list[int] = []
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:

        async def one() -> None:
            results.append((await create(http, "Same Name")).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(one)
    assert sorted(results) == [201, 409, 409, 409, 409, 409]
    assert len(live_server.service.store.list()) == 1


async def upload_reply(server: LiveServer, headers: bytes, total: int) -> bytes:
    """Send an upload of ``total`` bytes on a raw socket while reading the reply.

    A server should answer an over-limit upload (and stop reading) as soon as
    it knows, which httpx cannot observe: it reads nothing before its upload ends.
    """
    host, port = server.base_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    chunked = b"chunked" in headers
    reply = b""
    async with stream, trio.open_nursery() as nursery:

        async def upload() -> None:
            try:
                await stream.send_all(b"POST /v1/voices/create HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
                for _ in range(total // 65536):
                    chunk = b"x" * 65536
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        nursery.start_soon(upload)
        with trio.fail_after(20):
            while not reply.rstrip().endswith(b"}"):
                data = await stream.receive_some()
                if not data:
                    break
                reply += data
        nursery.cancel_scope.cancel()
    return reply


async def test_uploads_over_the_limit_are_rejected_while_reading(live_server: LiveServer) -> None:
    limit = live_server.service.settings.max_upload_bytes
    multipart = b"Content-Type: multipart/form-data; boundary=XX\r\n"
    with_length = await upload_reply(live_server, multipart + b"Content-Length: %d\r\n" % (limit + 1), limit + 65536)
    chunked = await upload_reply(live_server, multipart + b"Transfer-Encoding: chunked\r\n", 32 << 20)
    for reply in (with_length, chunked):
        assert reply.startswith(b"HTTP/1.1 413")
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "body_too_large"
    assert live_server.service.store.list() == []


async def test_uploads_in_compressed_formats_are_decoded_and_normalized(live_server: LiveServer) -> None:
    from tts_trio.audio.encoding import choose_encoding, encode_complete
    from tts_trio.audio.formats import AudioFormat

    source = AudioFormat(sample_rate=22050)
    pcm = REFERENCE[44:]
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        for fmt, filename in (("mp3", "ref.mp3"), ("flac", "ref.flac"), ("opus", "ref.ogg"), ("aac", "ref.aac")):
            data = encode_complete(source, choose_encoding(fmt, None, source), pcm)
            response = await create(http, f"from {fmt}", data=data, filename=filename)
            assert response.status_code == 201, response.text
            voice = response.json()
            assert voice["sample_rate"] == 24000
            assert abs(voice["duration"] - len(pcm) / 2 / 22050) < 0.2
    stored = live_server.service.store.list()
    for voice in stored:
        reference = live_server.service.store.reference_path(voice.id).read_bytes()
        assert reference[:4] == b"RIFF" and reference[22:24] == b"\x01\x00"  # mono WAV


async def test_custom_voices_reach_cloning_engines_as_reference_files(tmp_path: Path, nursery: trio.Nursery) -> None:
    import attrs as attrs_module

    from tests.support.engines import PacedEngine
    from tts_trio.engines import LoadedEngine
    from tts_trio.engines.catalog import SystemConfig
    from tts_trio.engines.hardware import Device
    from tts_trio.errors import VoiceNotSupported
    from tts_trio.observability import Metrics
    from tts_trio.synthesis.drain import Shutdown
    from tts_trio.synthesis.service import TtsService

    store = VoiceStore(tmp_path)
    store.open()
    voice_id = store_voice(store, "clone me")
    from tts_trio.audio.formats import AudioFormat
    from tts_trio.engines.pool import EnginePool

    pool = EnginePool("paced", [PacedEngine()], AudioFormat(sample_rate=16000))
    plain = LoadedEngine(pool, SystemConfig(), None, {}, frozenset(), cloning=False)
    service = TtsService(
        Settings.load(environ={}),
        plain,
        store,
        Device("cpu", 2),
        metrics=Metrics(),
        shutdown=Shutdown(),
        nursery=nursery,
    )
    with pytest.raises(VoiceNotSupported, match="coqui"):
        service.resolve_voice(voice_id)
    service.engine = attrs_module.evolve(plain, cloning=True)
    assert service.resolve_voice(voice_id) == str(tmp_path / voice_id / "reference.wav")
    store.set_current(voice_id)
    assert service.resolve_voice("default") == str(tmp_path / voice_id / "reference.wav")


async def test_the_upload_path_is_not_a_voice_id(live_server: LiveServer) -> None:
    # /v1/voices/create once also matched DELETE /v1/voices/<voice_id>, so Allow offered a DELETE there.
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        options = await http.options("/v1/voices/create")
        assert {method.strip() for method in options.headers["Allow"].split(",")} == {"OPTIONS", "POST"}
        refused = await http.delete("/v1/voices/create")
        assert refused.status_code == 405
        assert "DELETE" not in refused.headers["Allow"]
        assert (await http.delete("/v1/voices/v_0123456789abcdef")).status_code == 404
        assert (await http.delete("/v1/voices/created")).status_code == 404
