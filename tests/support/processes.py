"""Helpers for tests that start the server as a real process (``tts-trio serve``, bare ``hypercorn``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

BIN = Path(sys.executable).with_name("tts-trio")
ROOT = Path(__file__).resolve().parents[2]


def spawn(command: list[str], env: dict[str, str], *, unset: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start a server process (a plain function: starting it does not block); ``unset`` leaves variables out."""
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.Popen(
        command, env={**environment, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_pids(parent: int) -> set[int]:
    """Live children of ``parent`` (the espeak workers)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                children.add(int(entry.name))
    return children


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        with trio.fail_after(30):
            while True:
                assert process.poll() is None, "the server exited during start-up"
                try:
                    response = await http.get(url + "/health")
                    return dict(response.json())
                except httpx.TransportError:
                    await trio.sleep(0.05)
