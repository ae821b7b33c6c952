"""The CLI's client commands against a real server (the server runs in this test's event loop)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import wave
from pathlib import Path

import attrs
import httpx
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


WIDTH = 80
#: The CLI as in a script or log: no terminal, 80 columns, nothing forcing rich into terminal mode.
PLAIN_ENV = {
    **{
        key: value
        for key, value in os.environ.items()
        if key not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    },
    "COLUMNS": str(WIDTH),
}
PROGRESS_LINE = re.compile(rb"(\d+\.\d\d) s of audio received, (\d+\.\d)x real time, (\d+\.\d\d) s elapsed")
SUMMARY_LINE = re.compile(rb"(\d+\.\d\d) s of audio written to (.+) in (\d+\.\d\d) s \((\d+\.\d)x real time\)")


async def cli(server_url: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [BIN, *args, "--url", server_url],
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=PLAIN_ENV,
    )


async def server_json(server_url: str, path: str) -> object:
    """What the server itself answers, to hold the CLI's ``--json`` and tables against."""
    async with httpx.AsyncClient(base_url=server_url) as client:
        response = await client.get(path)
    response.raise_for_status()
    return response.json()


def table_rows(output: str) -> list[list[list[str]]]:
    """A table's rows, each a list of its cells' words, cells wrapped over several lines joined again.

    Columns are where the header's names start. A row begins on a line with
    something in the first column. A word may be split only where it is
    wider than its whole column (rich folds it, the piece filling the
    column); those pieces are joined again, any other split shows as a
    wrong word.
    """
    header, *lines = output.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    ends = [*starts[1:], WIDTH + 2]  # each column is 2 spaces narrower than the gap to the next
    rows: list[list[list[str]]] = []
    folded: list[bool] = []
    for line in lines:
        if line[: starts[1]].strip():
            rows.append([[] for _ in starts])
            folded = [False for _ in starts]
        for column, (start, end) in enumerate(zip(starts, ends, strict=True)):
            words = rows[-1][column]
            for piece in line[start:end].split():
                if folded[column]:
                    words[-1] += piece
                else:
                    words.append(piece)
                folded[column] = len(piece) == end - start - 2
    return rows


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


async def test_engines_list_shows_every_word_of_every_reason_within_the_width(live_server: LiveServer) -> None:
    url = live_server.base_url
    listed = await cli(url, "engines", "list")
    assert listed.returncode == 0, listed.stderr
    output = listed.stdout.decode()
    assert all(len(line) <= WIDTH for line in output.splitlines())
    engines = json.loads((await cli(url, "engines", "list", "--json")).stdout)["engines"]
    assert any(len(engine["reason"] or "") > WIDTH for engine in engines)  # there is something to wrap
    assert table_rows(output) == [
        [
            [engine["name"]],
            ["*"] if engine["current"] else [],
            ["yes" if engine["available"] else "no"],
            (engine["reason"] or "").split(),
        ]
        for engine in engines
    ]


async def test_voices_list_fits_the_width_and_keeps_every_voice(live_server: LiveServer) -> None:
    url = live_server.base_url
    listed = await cli(url, "voices", "list")
    assert listed.returncode == 0, listed.stderr
    output = listed.stdout.decode()
    assert output.splitlines()[0].split() == ["ID", "KIND", "NAME", "LANGUAGE", "CURRENT"]
    assert all(len(line) <= WIDTH for line in output.splitlines())
    voices = json.loads((await cli(url, "voices", "list", "--json")).stdout)["voices"]
    assert table_rows(output) == [
        [
            [voice["id"]],
            [voice["kind"]],
            voice["name"].split(),
            (voice.get("language") or "").split(),
            ["*"] if voice["current"] else [],
        ]
        for voice in voices
    ]


@pytest.mark.parametrize("path", ["/v1/engines", "/v1/voices", "/health"])
async def test_json_output_is_the_servers_answer_as_indented_json(live_server: LiveServer, path: str) -> None:
    command = {"/v1/engines": ["engines", "list"], "/v1/voices": ["voices", "list"], "/health": ["health"]}[path]
    printed = await cli(live_server.base_url, *command, "--json")
    assert printed.returncode == 0, printed.stderr
    answer = await server_json(live_server.base_url, path)
    if path == "/health":  # the uptime moves between the two requests
        assert isinstance(answer, dict)
        answer["uptime_s"] = json.loads(printed.stdout)["uptime_s"]
    assert printed.stdout == (json.dumps(answer, indent=2) + "\n").encode()


async def test_say_reports_seconds_rate_and_elapsed_time(live_server: LiveServer, tmp_path: Path) -> None:
    target = tmp_path / "progress.wav"
    spoken = await cli(live_server.base_url, "say", "Progress is shown. In seconds and as a rate.", "-o", str(target))
    assert spoken.returncode == 0, spoken.stderr
    lines = spoken.stderr.splitlines()
    progress = [PROGRESS_LINE.fullmatch(line) for line in lines[:-1]]
    assert progress and all(progress), lines  # line by line, no carriage returns or escapes
    summary = SUMMARY_LINE.fullmatch(lines[-1])
    assert summary is not None, lines
    assert summary[2] == str(target).encode()
    # The seconds reported are the seconds written: 16-bit mono at 22050 Hz after the 44-byte header.
    assert float(summary[1]) == pytest.approx((target.stat().st_size - 44) / (2 * 22050), abs=0.01)
    assert float(summary[4]) > 0
    quiet = await cli(live_server.base_url, "say", "Nothing on stderr.", "-o", str(target), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == b""


async def test_say_at_a_terminal_draws_a_live_display(live_server: LiveServer, tmp_path: Path) -> None:
    target = tmp_path / "terminal.wav"
    primary, secondary = pty.openpty()
    try:
        process = await trio.lowlevel.open_process(
            [BIN, "say", "A terminal shows a live display.", "-o", str(target), "--url", live_server.base_url],
            stdin=subprocess.DEVNULL,
            stderr=secondary,
            env={**PLAIN_ENV, "TERM": "xterm-256color"},
        )
        os.close(secondary)
        secondary = -1
        seen = b""
        with trio.fail_after(30):
            while chunk := await trio.to_thread.run_sync(_read_terminal, primary):
                seen += chunk
            assert await process.wait() == 0, seen
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    # The live display's frames (columns, not the plain lines' commas), then the summary.
    assert re.search(rb"\d+\.\d\d s of audio received +\d+\.\dx real time", seen), seen
    assert b"s of audio received," not in seen
    summary = SUMMARY_LINE.search(seen)
    assert summary is not None and summary[2] == str(target).encode(), seen


def _read_terminal(fd: int) -> bytes:
    """What the program wrote to its terminal; b"" once it has closed it (Linux reports EIO)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


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
    *progress, summary = spoken.stderr.splitlines()
    assert progress and all(PROGRESS_LINE.fullmatch(line) for line in progress), spoken.stderr
    assert SUMMARY_LINE.fullmatch(summary), spoken.stderr
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
            [BIN, "stream", text, "-o", str(target), "--url", live_server.base_url],
            stderr=subprocess.PIPE,
            env=PLAIN_ENV,
        )
        assert process.stderr is not None
        received = b""
        while b"s of audio received" not in received:
            received += await process.stderr.receive_some()
        process.send_signal(signum)
        while chunk := await process.stderr.receive_some():
            received += chunk
        assert await process.wait() == status
    assert b"Traceback" not in received
    summary = received.splitlines()[-1]
    assert summary.endswith(b"; stopped") and SUMMARY_LINE.fullmatch(summary.removesuffix(b"; stopped")), received
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
