"""The launch contract: ``tts-trio serve`` and ``python -m tts_trio`` as real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import hypercorn
import pytest
import trio
import trustme
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.support.processes import BIN, ROOT, free_port, spawn, wait_healthy, worker_pids
from tts_trio.server.allocator import find_malloc_trim


@pytest.mark.parametrize("command", [[str(BIN)], [sys.executable, "-m", "tts_trio"]], ids=["script", "module"])
async def test_serve_starts_speaks_and_stops_cleanly_on_sigterm(command: list[str], tmp_path: Path) -> None:
    port = free_port()
    env = {"TTS_ENGINE": "system", "TTS_SLOTS": "3", "TTS_VOICES_PATH": str(tmp_path)}
    process = spawn(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--voices-path", str(tmp_path / "v")], env
    )
    try:
        health = await wait_healthy(f"http://127.0.0.1:{port}", process)
        assert health["engine"] == "system"
        assert health["slots"] == {"total": 3, "in_use": 0, "waiting": 0}  # the environment applies
        assert len(worker_pids(process.pid)) == 3
        async with httpx.AsyncClient() as http:
            response = await http.post(f"http://127.0.0.1:{port}/v1/tts/generate", json={"text": "Hello."})
            assert response.content.startswith(b"RIFF")
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        assert worker_pids(process.pid) == set()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().partition("=")[::2] for entry in entries if entry)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the server's environment from /proc")
@pytest.mark.skipif(find_malloc_trim() is None, reason="no malloc_trim in this C library: serve keeps pymalloc")
@pytest.mark.parametrize(("given", "expected"), [(None, "malloc"), ("pymalloc", "pymalloc")])
async def test_serve_runs_on_glibc_allocator_unless_told_otherwise(
    given: str | None, expected: str, tmp_path: Path
) -> None:
    """``serve`` restarts itself in place (same PID) with ``PYTHONMALLOC=malloc``; a value already set is kept."""
    port = free_port()
    env = {"TTS_ENGINE": "system", "TTS_SLOTS": "1", "TTS_VOICES_PATH": str(tmp_path)}
    if given is not None:
        env["PYTHONMALLOC"] = given
    process = spawn([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env, unset=("PYTHONMALLOC",))
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        assert _environment_of(process.pid).get("PYTHONMALLOC") == expected
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        assert f"allocator {expected}" in output.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "99999"], {}, "tts-trio: invalid setting --port: must be between 0 and 65535, got 99999"),
        ([], {"TTS_SLOTS": "many"}, "tts-trio: invalid setting TTS_SLOTS: expected an integer, got 'many'"),
        (["--engine", "nonesuch"], {}, "tts-trio: unknown engine 'nonesuch'; known engines: system, azure, openai"),
        (["--engine", "azure"], {}, "tts-trio: engine 'azure' cannot start here: "),
        (["--certfile", "cert.pem"], {}, "tts-trio: invalid setting --certfile/--keyfile: give both"),
        ([], {"TTS_GRACEFUL_TIMEOUT": "-1"}, "tts-trio: invalid setting TTS_GRACEFUL_TIMEOUT: must be between 0"),
    ],
)
def test_serve_bad_setting_stops_startup_with_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    for _ in range(2):
        result = subprocess.run(
            [str(BIN), "serve", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
        )
        # Once, on a fresh container, this process was killed by an outside SIGTERM before it
        # printed anything (a stale signal from another tool's child, on a recycled pid); a
        # second run tells that apart from a real failure, which fails both times.
        if result.returncode != -signal.SIGTERM:
            break
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message)
    assert "\n" not in result.stderr.strip()
    assert "Running on" not in result.stderr  # refused before anything started (the timeout bounds a hang)


async def test_hypercorn_command_with_the_repo_config_serves_and_drains(tmp_path: Path) -> None:
    """Also under bare Hypercorn, SIGTERM drains: an open WebSocket is closed with 1001 (going away)."""
    port = free_port()
    hypercorn = str(Path(sys.executable).with_name("hypercorn"))
    command = [hypercorn, "-c", str(ROOT / "hypercorn.toml"), "--bind", f"127.0.0.1:{port}", "tts_trio.server.asgi:app"]
    process = spawn(command, {"TTS_VOICES_PATH": str(tmp_path), "TTS_SLOTS": "1"})
    try:
        health = await wait_healthy(f"http://127.0.0.1:{port}", process)
        assert health["slots"] == {"total": 1, "in_use": 0, "waiting": 0}
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/v1/tts/stream-sse", params={"text": "Hi there."})
            assert "event: done" in response.text
        async with open_websocket_url(f"ws://127.0.0.1:{port}/v1/tts/stream") as ws:
            await ws.send_message(json.dumps({"action": "ping"}))
            assert json.loads(await ws.get_message()) == {"type": "pong"}
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(20):
                await ws.get_message()
            assert closed.value.reason is not None and closed.value.reason.code == 1001
        assert await trio.to_thread.run_sync(process.wait, 20) == 0
        assert worker_pids(process.pid) == set()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_several_workers(tmp_path: Path) -> None:
    config = tmp_path / "hypercorn.toml"
    config.write_text('worker_class = "trio"\nworkers = 4\n')
    result = subprocess.run([str(BIN), "serve", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "workers = 4" in result.stderr and "replicas" in result.stderr


async def test_sigterm_during_streams_ends_them_with_a_final_event_and_exits_0(tmp_path: Path) -> None:
    """The real engine and process: open streams end with ``done`` or ``shutting_down``, never just stop."""
    port = free_port()
    env = {"TTS_VOICES_PATH": str(tmp_path), "TTS_SLOTS": "2", "TTS_GRACEFUL_TIMEOUT": "3"}
    process = spawn([str(BIN), "serve", "--port", str(port)], env)
    base = f"http://127.0.0.1:{port}"
    text = " ".join(f"This is sentence number {n} of a long answer." for n in range(150))
    finals: list[str] = []
    try:
        await wait_healthy(base, process)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def listen(first_audio: trio.Event) -> None:
                last = ""
                async with http.stream("GET", "/v1/tts/stream-sse", params={"text": text}) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("event: "):
                            last = line
                            if line == "event: audio":
                                first_audio.set()
                        elif line.startswith("data: ") and last == "event: error":
                            last = f"error:{json.loads(line[6:])['code']}"
                finals.append(last)

            with trio.fail_after(30):
                async with trio.open_nursery() as clients:
                    started = [trio.Event() for _ in range(3)]
                    for event in started:
                        clients.start_soon(listen, event)
                    for event in started:
                        await event.wait()
                    process.send_signal(signal.SIGTERM)
                    await trio.sleep(0.1)
                    process.send_signal(signal.SIGINT)  # an impatient operator: still a clean drain
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        assert b"Traceback" not in output
        assert worker_pids(process.pid) == set()
        assert len(finals) == 3
        assert set(finals) <= {"event: done", "error:shutting_down"}, finals
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_serve_with_a_certificate_speaks_http2_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    port = free_port()
    command = [str(BIN), "serve", "--config", str(ROOT / "hypercorn.toml")]
    env = {"TTS_VOICES_PATH": str(tmp_path), "TTS_PORT": str(port)}  # replaces the config file's bind
    process = spawn([*command, "--certfile", str(cert), "--keyfile", str(key)], env)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    base = f"https://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(http2=True, verify=trusted, timeout=30) as http:
            with trio.fail_after(30):
                while True:
                    assert process.poll() is None, "the server exited during start-up"
                    try:
                        health = await http.get(base + "/health")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
            assert (health.status_code, health.http_version) == (200, "HTTP/2")
            response = await http.post(base + "/v1/tts/generate", json={"text": "Spoken over TLS."})
            assert (response.http_version, response.content[:4]) == ("HTTP/2", b"RIFF")
        async with httpx.AsyncClient(http2=False, verify=trusted) as http1:
            assert (await http1.get(base + "/health")).http_version == "HTTP/1.1"
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bare_hypercorn_refuses_several_workers(tmp_path: Path) -> None:
    hypercorn = str(Path(sys.executable).with_name("hypercorn"))
    command = [hypercorn, "-c", str(ROOT / "hypercorn.toml"), "-w", "2", "--bind", f"127.0.0.1:{free_port()}"]
    env = {**os.environ, "TTS_VOICES_PATH": str(tmp_path)}
    # It stops instead of serving (the timeout would fail the test). Hypercorn 0.18's own exit
    # status is 0 here even though its workers exited with 2: it reads the status of the
    # workers left after the first ones exited, and there are none.
    result = subprocess.run([*command, "tts_trio.server.asgi:app"], capture_output=True, text=True, timeout=60, env=env)
    assert "tts-trio: invalid setting workers = 2 (hypercorn -w)" in result.stderr
    assert "Running on" not in result.stderr


# -- the Hypercorn fixes refuse a Hypercorn they were not written for ---------------------------


def shadow_hypercorn(
    root: Path, *, version: str | None = None, change: tuple[str, str] | None = None
) -> dict[str, str]:
    """A copy of the installed Hypercorn put first on PYTHONPATH, so a server process imports it instead.

    ``change`` is (module file, line): that line is added to the body of the
    first function of the file the fixes patch, as a release touching it
    would; ``version`` makes the copy's package metadata claim another
    release. Nothing of ours is altered: the server process meets a real
    mismatch.
    """
    installed = Path(hypercorn.__file__).parent
    shadow = root / "shadow"
    shutil.copytree(installed, shadow / "hypercorn", ignore=shutil.ignore_patterns("__pycache__"))
    if change is not None:
        module, signature = change
        path = shadow / "hypercorn" / module
        source = path.read_text()
        assert source.count(signature) == 1
        path.write_text(source.replace(signature, signature + "\n        # a line a later release added", 1))
    if version is not None:
        [dist_info] = installed.parent.glob("hypercorn-*.dist-info")
        copied = shadow / f"hypercorn-{version}.dist-info"
        shutil.copytree(dist_info, copied)
        metadata = copied / "METADATA"
        metadata.write_text(metadata.read_text().replace("\nVersion: 0.18.0\n", f"\nVersion: {version}\n", 1))
    return {"PYTHONPATH": str(shadow), "TTS_VOICES_PATH": str(root / "voices")}


CHANGED_RUN = ("trio/tcp_server.py", "    async def run(self) -> None:")


@pytest.mark.parametrize(
    ("shadow", "message"),
    [
        (
            {"change": CHANGED_RUN},
            "tts-trio: hypercorn fix 'containment' (hypercorn#225: an exception in one connection ends the whole "
            "server process) does not match: hypercorn.trio.tcp_server.TCPServer.run changed (source sha256 ",
        ),
        ({"version": "0.19.0"}, "tts-trio: hypercorn fix 'containment' (hypercorn#225: "),
    ],
    ids=["changed-target", "other-version"],
)
def test_serve_refuses_a_hypercorn_the_fixes_do_not_match_with_one_line(
    tmp_path: Path, shadow: dict[str, Any], message: str
) -> None:
    env = {**os.environ, **shadow_hypercorn(tmp_path, **shadow)}
    result = subprocess.run(
        [str(BIN), "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(message)
    assert "refusing to start" in line and "TTS_HYPERCORN_FIXES=unverified" in line
    if "version" in shadow:  # every fix names the version it was written for
        assert line.count("written for hypercorn 0.18.0, found 0.19.0") == 5


def test_bare_hypercorn_refuses_a_changed_target_with_one_line(tmp_path: Path) -> None:
    """The worker prints one line and exits 2 instead of serving.

    Hypercorn 0.18's parent process then exits 0 all the same: it records
    the worker's status, then overwrites it while joining the (now empty)
    worker list (hypercorn#269). The parent never imports the app, so no
    fix of ours can reach it; the timeout would fail this test if it served.
    """
    env = {**os.environ, **shadow_hypercorn(tmp_path, change=CHANGED_RUN)}
    hypercorn_bin = str(Path(sys.executable).with_name("hypercorn"))
    command = [hypercorn_bin, "-c", str(ROOT / "hypercorn.toml"), "--bind", f"127.0.0.1:{free_port()}"]
    result = subprocess.run([*command, "tts_trio.asgi:app"], env=env, capture_output=True, text=True, timeout=60)
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("tts-trio: hypercorn fix 'containment' (hypercorn#225: ")
    assert "Running on" not in result.stderr


async def test_serve_unverified_applies_the_fixes_anyway_and_says_so(tmp_path: Path) -> None:
    """The explicit override: the server starts on the changed Hypercorn and logs which fix did not match."""
    port = free_port()
    env = {**shadow_hypercorn(tmp_path, change=CHANGED_RUN), "TTS_HYPERCORN_FIXES": "unverified"}
    process = spawn([str(BIN), "serve", "--port", str(port)], env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        text = output.decode()
        assert "[WARNING]" in text and "hypercorn fix 'containment'" in text and "applied anyway" in text
        assert "hypercorn fix 'socket_sends'" not in text  # only the fix whose target changed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
