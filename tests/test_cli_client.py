"""The CLI's client commands against a real server (the server runs in this test's event loop)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import trio

from .conftest import LiveServer

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
