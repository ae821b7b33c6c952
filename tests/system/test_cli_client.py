"""The CLI's client commands against a real server (the server runs in this test's event loop)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import wave
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.engines import PacedEngine, use_engine
from tests.support.live import LiveServer, eventually, start_live_server
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool
from tts_trio.settings import Settings

BIN = str(Path(sys.executable).with_name("tts-trio"))
REFERENCE = subprocess.run(
    ["espeak-ng", "--stdout", "A reference recording long enough to become a cloned voice for the command line."],
    capture_output=True,
    check=True,
).stdout


async def cli(server_url: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [BIN, *args, "--url", server_url],
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_health_engines_and_voices_commands(live_server: LiveServer, tmp_path: Path) -> None:
    url = live_server.base_url
    health = await cli(url, "health", "--json")
    assert health.returncode == 0 and json.loads(health.stdout)["engine"] == "system"
    table = await cli(url, "engines", "list")
    assert table.stdout.decode().splitlines()[0].split() == ["ENGINE", "CURRENT", "AVAILABLE", "REASON"]
    switched = await cli(url, "engines", "switch", "system", "--config", "voice=de", "--config", "slots=1", "--json")
    assert switched.returncode == 0 and json.loads(switched.stdout)["config"] == {"voice": "de", "slots": 1}
    reference = tmp_path / "me.wav"
    reference.write_bytes(REFERENCE)
    created = await cli(url, "voices", "create", "Me", str(reference), "--json")
    assert created.returncode == 0, created.stderr
    voice_id = json.loads(created.stdout)["id"]
    listed = json.loads((await cli(url, "voices", "list", "--json")).stdout)
    assert voice_id in {voice["id"] for voice in listed["voices"]}
    assert (await cli(url, "voices", "set", "fr-fr")).stdout.decode().strip() == "current voice: fr-fr"
    assert (await cli(url, "voices", "delete", voice_id)).returncode == 0


async def test_say_streams_to_a_file_or_stdout(live_server: LiveServer, tmp_path: Path) -> None:
    url = live_server.base_url
    target = tmp_path / "out.wav"
    spoken = await cli(url, "say", "Hello from the command line.", "-o", str(target))
    assert spoken.returncode == 0
    assert b"s of audio written" in spoken.stderr
    with wave.open(str(target)) as reader:
        assert reader.getframerate() == 22050 and len(reader.readframes(10**9)) > 22050
    piped = await cli(url, "say", "-", "-o", "-", "--format", "pcm", "--quiet", stdin=b"Read from standard input.")
    assert piped.returncode == 0 and len(piped.stdout) > 22050 and not piped.stdout.startswith(b"RIFF")
    wav = await cli(url, "say", "Straight to stdout.", "-o", "-", "--quiet")
    with wave.open(io.BytesIO(wav.stdout)) as reader:
        assert reader.getnchannels() == 1


async def test_errors_are_messages_with_exit_codes(live_server: LiveServer) -> None:
    refused = await cli(live_server.base_url, "voices", "set", "klingon")
    assert refused.returncode == 1
    assert refused.stderr.decode().startswith("tts-trio: no voice 'klingon'")
    bad_say = await cli(live_server.base_url, "say", "hi", "--voice", "klingon", "-o", "-")
    assert bad_say.returncode == 1 and b"voice_not_found" in bad_say.stderr
    unreachable = await cli("http://127.0.0.1:9", "health")
    assert unreachable.returncode == 3
    assert unreachable.stderr.decode().startswith("tts-trio: cannot reach http://127.0.0.1:9")
    usage = await cli(live_server.base_url, "engines", "switch", "system", "--config", "novalue")
    assert usage.returncode == 2


async def test_stream_speaks_text_or_standard_input_over_the_websocket(live_server: LiveServer, tmp_path: Path) -> None:
    url = live_server.base_url
    target = tmp_path / "streamed.wav"
    spoken = await cli(url, "stream", "Hello over the WebSocket. A second sentence.", "-o", str(target))
    assert spoken.returncode == 0, spoken.stderr
    assert b"s of audio written" in spoken.stderr
    data = target.read_bytes()
    # The streamed header's open sizes were replaced by the real ones.
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    assert int.from_bytes(data[40:44], "little") == len(data) - 44
    with wave.open(str(target)) as reader:
        assert reader.getframerate() == 22050 and reader.getnframes() > 22050
    lines = b"The first line arrives.\nThen a second one\nends here.\n"
    piped = await cli(url, "stream", "-o", "-", "--format", "pcm", "--quiet", stdin=lines)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout) > 22050 and len(piped.stdout) % 2 == 0 and not piped.stdout.startswith(b"RIFF")
    assert live_server.service.metrics.registry.get_sample_value("tts_cancellations_total", {"cause": "stop"}) is None


async def test_stream_errors_are_messages_with_exit_codes(live_server: LiveServer, tmp_path: Path) -> None:
    refused = await cli(live_server.base_url, "stream", "Hi.", "--voice", "klingon", "-o", str(tmp_path / "x.wav"))
    assert refused.returncode == 1
    assert "no voice 'klingon'" in refused.stderr.decode() and "voice_not_found" in refused.stderr.decode()
    unreachable = await cli("http://127.0.0.1:9", "stream", "Hi.", "-o", str(tmp_path / "y.wav"))
    assert unreachable.returncode == 3
    assert unreachable.stderr.decode().startswith("tts-trio: cannot reach http://127.0.0.1:9")
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()  # no empty files left
    nothing = await cli(live_server.base_url, "stream", "-", "-o", "-", "--quiet", stdin=b"\n  \n")
    assert (nothing.returncode, nothing.stderr.decode().strip()) == (2, "tts-trio: no text to speak")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
async def test_a_signal_during_stream_stops_the_synthesis_at_once(
    live_server: LiveServer, tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    engine = PacedEngine(chunks=2, interval=0.05)
    use_engine(live_server, EnginePool("paced", [engine], AudioFormat(16000)))
    text = " ".join(f"Sentence {n} of many." for n in range(200))
    target = tmp_path / "interrupted.wav"
    with trio.fail_after(30):
        process = await trio.lowlevel.open_process(
            [BIN, "stream", text, "-o", str(target), "--url", live_server.base_url], stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        received = b""
        while b"s of audio received" not in received:
            received += await process.stderr.receive_some()
        process.send_signal(signum)
        while chunk := await process.stderr.receive_some():
            received += chunk
        assert await process.wait() == status
    assert b"stopped" in received and b"Traceback" not in received
    registry = live_server.service.metrics.registry
    assert registry.get_sample_value("tts_cancellations_total", {"cause": "stop"}) == 1
    await eventually(lambda: engine.active == 0 and live_server.service.pool.statistics().in_use == 0)
    # What was written is a valid file of what was spoken before the stop.
    with wave.open(str(target)) as reader:
        assert 0 < reader.getnframes() < 200 * 2 * 16


async def test_stream_sends_the_api_key(settings: Settings, nursery: trio.Nursery, tmp_path: Path) -> None:
    server, _ = await start_live_server(nursery, attrs.evolve(settings, api_keys="sekrit"))
    target = tmp_path / "keyed.wav"
    refused = await cli(server.base_url, "stream", "Hello.", "-o", str(target), "--quiet")
    assert refused.returncode == 1 and b"HTTP 401" in refused.stderr and b"unauthorized" in refused.stderr
    spoken = await cli(server.base_url, "stream", "Hello.", "-o", str(target), "--quiet", "--api-key", "sekrit")
    assert spoken.returncode == 0, spoken.stderr
    assert target.read_bytes().startswith(b"RIFF")
