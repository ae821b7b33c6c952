"""Local fleet check: N real replicas on one voice store behind a real HAProxy.

Run it through ``scripts/fleet-check.sh`` (which installs HAProxy when it is
missing), or directly::

    .venv/bin/python scripts/fleet_check.py [--replicas 3]
    .venv/bin/python scripts/fleet_check.py --urls http://a:8000,http://b:8000,http://c:8000

It starts ``--replicas`` processes of ``tts-trio serve`` (``--slots 1``, each
on its own loopback port, all on one shared ``--voices-path`` in a temporary
directory) and an HAProxy (``haproxy -db``, its configuration written next to
them) that balances them round robin, health-checks ``GET /ready`` and
retries a synthesis request that no replica answered or that one refused
unstarted. Then, one line per check:

1. voices are fleet-wide: a voice created on one replica is listed by every
   replica; the current voice set on another is reported by all; a delete on
   a third is seen by all (and a second delete is a 404);
2. name race: one name created on two replicas at the same moment gives one
   201 and one 409 ``voice_exists``, 20 times out of 20;
3. engine switch fleet-wide: ``POST /v1/engines/switch`` on one replica, and
   the time until every replica's ``/health`` reports the new engine and the
   switch's ``generation`` in ``fleet.generation``, with ``fleet.status``
   ``converged``. 3a: espeak-ng with another voice (loads in milliseconds:
   target 5 s); 3b, where piper is installed, through another replica: every
   replica must see it within 5 s and run it within 30 s (each loads the
   model, all at once on shared cores, which is the engine's time, not the
   fleet's); 3c: back to the original engine, through a third replica, 5 s;
4. rolling restart under load: clients send ``POST /v1/tts/generate``
   through HAProxy while each replica in turn gets SIGTERM, exits, and is
   replaced by a fresh process on the same port that must be ready (and in
   HAProxy's rotation again) before the next one is restarted; target: no
   request lost;
5. SIGKILL mid-stream: SSE and WebSocket streams run on every replica (and
   voice creates on the one to be killed); one replica is killed; its
   clients must see their connection end within 2 s, the other streams must
   end with ``done`` and every byte their ``metrics`` promise, HAProxy must
   still answer (before and after the killed replica is replaced), and the
   store must be consistent (every replica lists the same voices, each one
   whole).

With ``--urls`` only the state checks (1, 2, 3) run, against replicas that
are already running (containers, pods); nothing is started or stopped, and
the engine is switched back to what it was.

What counts as a *lost* request (check 4)
-----------------------------------------
A request is *done* when it ends in ``200`` with a whole WAV file (the
length HTTP promised, a RIFF header whose data size matches, at least one
audio frame). A client may retry a request only when the answer proves that
no replica did any of its work:

* ``503`` with ``Retry-After`` from a replica (``shutting_down``,
  ``overloaded``, ``too_many_connections``: refused before any synthesis),
  after waiting what ``Retry-After`` says (at most 1 s here);
* HAProxy's own ``503`` (no replica could be reached; this configuration
  marks it with ``X-Proxy-Error: no-server`` and ``Retry-After: 1``).

Everything else that is not *done* is *lost*: any other status (a ``502``
or ``504`` from HAProxy means a replica took the request and then failed
it), a connection error or timeout between the client and HAProxy (HAProxy
is never restarted here, so there is no "it never arrived" to claim), a
truncated or malformed body, or a request still not done after 8 attempts
or 20 s. Connection failures and empty responses between HAProxy and a
replica never reach the client as such: HAProxy retries them on another
replica itself (``retry-on conn-failure empty-response 503``; see the
configuration below), and only what it then answers is judged.

That holds only for a request HAProxy can replay: one it held whole
(headers and body) when it first sent it to a replica. httpx writes a
POST's headers and its body in two sends, and HAProxy forwards the headers
at once; a request sent on before its body had arrived is not replayable
(HAProxy turns its L7 retries off). When such a request met a replica that
closed its kept-alive connection as it drained (Hypercorn closes idle
connections at SIGTERM, also one whose request it has not read yet),
HAProxy had no retry, and as the request was not the first on its client
connection it closed that connection without a response and without a log
line (HAProxy's ``abort_keep_alive``: the client is to retry, as after a
server's keep-alive close); httpx reports ``RemoteProtocolError: Server
disconnected without sending a response``. A replica's ``503`` reached the
client unretried the same way. That is a real loss (httpx does not
replay a POST by itself), and it is still counted as one; the
configuration makes it not happen: HAProxy waits for the whole body of
a synthesis request before it sends it anywhere (``http-request
wait-for-body``), as a production configuration that relies on L7 retries
must too.

Exit status: 0 when every check passed, 1 when one failed, 2 on bad usage.
Every process started here is stopped and the temporary directory removed
at the end, also on failure or Ctrl-C; children get SIGKILL from the kernel
should this driver itself be killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import ctypes
import io
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket

from tts_trio.voices.store import STALE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("tts-trio")

#: How many times the name race runs (check 2).
RACE_TRIES = 20
#: Seconds until every replica must see a switch, and run it when it loads at once (check 3).
CONVERGE_TARGET = 5.0
#: Seconds until every replica runs piper after a switch to it: each loads the model, all at once.
PIPER_RUN_LIMIT = 30.0
#: Seconds a killed replica's clients may take to see their connection end (check 5).
KILL_DETECT_TARGET = 2.0
#: Concurrent clients through HAProxy during the rolling restart (check 4).
LOAD_CLIENTS = 4
#: A request of check 4 is lost after this many attempts, or this long.
MAX_ATTEMPTS = 8
REQUEST_BUDGET = 20.0
#: Graceful timeout of the replicas (seconds a drain may take; the README's default is 5).
GRACEFUL_TIMEOUT = 5

REFERENCE_TEXT = "A reference recording that is long enough to become a cloned voice, surely."

HAPROXY_CONFIG = """\
# Written by scripts/fleet_check.py; run as: haproxy -db -f {path}
global
    log stdout format raw local0 info
    maxconn 512

defaults
    mode http
    log global
    option log-health-checks
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # Longer than the clients keep an idle connection (httpx: 5 s), so that the
    # client, not HAProxy, closes it: HAProxy closing one as a client reuses it
    # would lose that request.
    timeout http-keep-alive 10s
    timeout queue 5s
    # WebSockets and long SSE streams, once upgraded or under way.
    timeout tunnel 1h
    # A request that could not be handed to a replica (connection refused or
    # reset: a replica that is stopping or gone), that got no response at all
    # (a kept-alive connection the replica closed as it stopped), or that a
    # replica refused with 503 (shutting_down, overloaded: it did no work) is
    # sent again, each time to another replica (redispatch 1), up to 3 times.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503

frontend fleet
    bind 127.0.0.1:{port}
    http-request capture req.hdr(X-Request-Id) len 64
    log-format "%tr %ST %tsc retries=%rc %b/%s %HM %HP rid=%hr"
    default_backend replicas

backend replicas
    balance roundrobin
    # /ready answers 503 while a replica starts, switches away or drains after
    # SIGTERM, and a stopped one refuses the connection: either takes it out
    # of the rotation at the next check (500 ms), and one good check puts it back.
    # No "on-marked-down shutdown-sessions": a draining replica finishes what it took.
    option httpchk GET /ready
    http-check expect status 200
    default-server check inter 500ms fastinter 250ms downinter 250ms fall 1 rise 1
    # Only synthesis is replayed by the L7 retries (it has no side effect);
    # voice uploads, deletes and engine switches are never sent twice.
    http-request disable-l7-retry unless {{ path_beg /v1/tts/ /v1/audio/speech }}
    # ... and only a request that HAProxy holds whole when it first sends it can
    # be replayed: one forwarded while its body was still arriving (a client
    # writes the headers and the body apart, as httpx does) loses its L7 retries,
    # so a replica's 503 reaches the client, and a kept-alive connection the
    # replica closes as it drains ends with the client's connection closed
    # without a response. So synthesis requests wait here for their whole body
    # first (a few hundred bytes; a body over tune.bufsize is never replayable).
    http-request wait-for-body time 5s if {{ path_beg /v1/tts/ /v1/audio/speech }}
    # HAProxy's own 503 (no replica could take the request) says so, and when to retry.
    http-error status 503 content-type application/json hdr Retry-After 1 hdr X-Proxy-Error no-server {no_server}
{servers}

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


#: The body of HAProxy's own 503, in the server's error shape.
NO_SERVER = """string '{"error": {"code": "no_server", "message": "no replica could take the request"}}'"""


# -- reporting ---------------------------------------------------------------


@dataclass
class Report:
    failures: int = 0
    lines: list[str] = field(default_factory=list)

    def result(self, ok: bool, check: str, text: str) -> bool:
        line = f"{'PASS' if ok else 'FAIL'} [{check}] {text}"
        self.lines.append(line)
        print(line, flush=True)
        if not ok:
            self.failures += 1
        return ok

    def note(self, check: str, text: str) -> None:
        line = f"NOTE [{check}] {text}"
        self.lines.append(line)
        print(line, flush=True)


def info(text: str) -> None:
    print(f"     {text}", flush=True)


class CheckFailed(Exception):
    """A check found what it must not; the message says what."""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- processes ---------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the driver dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child with its output appended to ``log_path`` (call it from the main thread only)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def stop_process(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def wait_exit(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The exit status, or None when it still runs after ``seconds`` (blocking: run it in a thread)."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(parent: int) -> set[int]:
    """Live (not zombie) children of ``parent``: a replica's espeak-ng workers."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                found.add(int(entry.name))
    return found


async def outliving(pids: set[int], seconds: float = 3.0) -> list[int]:
    """Those of ``pids`` (a stopped replica's workers) still running ``seconds`` later."""
    left = [pid for pid in pids if alive(pid)]
    with trio.move_on_after(seconds):
        while left:
            await trio.sleep(0.05)
            left = [pid for pid in left if alive(pid)]
    return left


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def tail(path: Path, lines: int = 15, grep: str | None = None) -> list[str]:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    if grep is not None:
        text = [line for line in text if grep in line]
    return text[-lines:]


@dataclass
class Replica:
    name: str
    port: int
    voices: Path
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Every espeak-ng worker pid seen, so that none outlives the check.
    workers: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"---- fleet check: start {self.starts} of {self.name} ----\n")
        self.process = spawn(
            [
                str(BIN),
                "serve",
                "--port",
                str(self.port),
                "--voices-path",
                str(self.voices),
                "--slots",
                "1",
                "--graceful-timeout",
                str(GRACEFUL_TIMEOUT),
            ],
            self.log,
            # The phrase cache stays on: every text of this check is new to it anyway.
            {"TTS_LOG_LEVEL": "info"},
        )

    def note_workers(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.workers |= children_of(self.process.pid)


async def wait_ready(http: httpx.AsyncClient, replica: Replica, limit: float = 30.0) -> float:
    """Seconds until ``GET /ready`` answers 200 (the process must stay up meanwhile)."""
    started = time.monotonic()
    with trio.fail_after(limit):
        while True:
            assert replica.process is not None
            if replica.process.poll() is not None:
                raise CheckFailed(
                    f"{replica.name} exited with {replica.process.returncode} while starting: "
                    + " | ".join(tail(replica.log, 5))
                )
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(replica.url + "/ready", timeout=2)).status_code == 200:
                    replica.note_workers()
                    return time.monotonic() - started
            await trio.sleep(0.05)


@dataclass
class Proxy:
    port: int
    stats_port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, replicas: list[Replica]) -> str:
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port}" for r in replicas)
        text = HAPROXY_CONFIG.format(
            path=self.config, port=self.port, stats_port=self.stats_port, servers=servers, no_server=NO_SERVER
        )
        self.config.write_text(text)
        return text

    def start(self) -> None:
        checked = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise CheckFailed(f"haproxy -c refused the configuration: {checked.stdout}{checked.stderr}")
        self.process = spawn(["haproxy", "-db", "-f", str(self.config)], self.log)

    async def servers(self, http: httpx.AsyncClient) -> dict[str, dict[str, str]]:
        """HAProxy's view of the replicas (the stats CSV): status, sessions, retries, redispatches."""
        text = (await http.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5)).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def wait_status(self, http: httpx.AsyncClient, name: str, up: bool, limit: float = 10.0) -> float:
        started = time.monotonic()
        with trio.fail_after(limit):
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise CheckFailed(f"haproxy exited with {self.process.returncode}: {' | '.join(tail(self.log, 5))}")
                with contextlib.suppress(httpx.TransportError):  # while HAProxy starts
                    status = (await self.servers(http)).get(name, {}).get("status", "")
                    if status.split(" ")[0] == ("UP" if up else "DOWN"):
                        return time.monotonic() - started
                await trio.sleep(0.05)

    def log_lines(self, grep: str) -> list[str]:
        return tail(self.log, 10, grep)


# -- HTTP helpers ----------------------------------------------------------------


def make_reference() -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", REFERENCE_TEXT], capture_output=True, check=True).stdout


async def create_voice(
    http: httpx.AsyncClient, url: str, name: str, reference: bytes, seconds: float = 30
) -> httpx.Response:
    return await http.post(
        url + "/v1/voices/create",
        data={"name": name, "language": "en"},
        files={"audio_file": ("reference.wav", reference, "audio/wav")},
        timeout=seconds,
    )


async def voices(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url + "/v1/voices")
    if response.status_code != 200:
        raise CheckFailed(f"GET {url}/v1/voices: {response.status_code} {response.text[:200]}")
    return dict(response.json())


async def custom_voices(http: httpx.AsyncClient, url: str) -> dict[str, dict[str, Any]]:
    listed = (await voices(http, url))["voices"]
    return {voice["id"]: voice for voice in listed if voice["kind"] == "custom"}


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run the calls at once; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(index: int, call: Callable[[], Awaitable[Any]]) -> None:
        results[index] = await call()

    async with trio.open_nursery() as nursery:
        for index, call in enumerate(calls):
            nursery.start_soon(one, index, call)
    return results


def names_of(urls: list[str], replicas: list[Replica] | None) -> list[str]:
    if replicas is not None:
        return [replica.name for replica in replicas]
    return [f"r{index}" for index in range(len(urls))]


# -- check 1: voices fleet-wide ------------------------------------------------------


async def check_voices(
    report: Report, http: httpx.AsyncClient, urls: list[str], names: list[str], reference: bytes
) -> None:
    n = len(urls)
    a, b, c = 0, 1 % n, 2 % n
    name = f"Fleet check {secrets.token_hex(3)}"
    started = time.monotonic()
    created = await create_voice(http, urls[a], name, reference)
    create_time = time.monotonic() - started
    if created.status_code != 201:
        raise CheckFailed(f"create on {names[a]}: {created.status_code} {created.text[:300]}")
    voice_id = created.json()["id"]
    listings = await gather(*[lambda url=url: custom_voices(http, url) for url in urls])
    missing = [names[i] for i, listed in enumerate(listings) if voice_id not in listed]
    wrong = [names[i] for i, listed in enumerate(listings) if voice_id in listed and listed[voice_id]["name"] != name]
    report.result(
        not missing and not wrong,
        "1a",
        f"voice {voice_id} created on {names[a]} (201 in {ms(create_time)}) is listed by "
        f"{n - len(missing)}/{n} replicas at once"
        + (f"; missing on {missing}" if missing else "")
        + (f"; wrong name on {wrong}" if wrong else ""),
    )

    # The current voice: set on another replica, reported by every one.
    before = await voices(http, urls[b])
    previous = before["current"]
    if before["cloning"]:
        chosen = voice_id
    else:  # an engine that cannot clone refuses a custom voice as current (422): use one of its own
        builtin = [v["id"] for v in before["voices"] if v["kind"] == "builtin" and v["id"] != previous]
        chosen = next((v for v in ("de", "fr-fr", "es") if v in builtin), builtin[0] if builtin else "default")
    response = await http.post(f"{urls[b]}/v1/voices/{chosen}/set")
    if response.status_code != 200:
        raise CheckFailed(f"set {chosen} on {names[b]}: {response.status_code} {response.text[:300]}")
    reported = await gather(*[lambda url=url: voices(http, url) for url in urls])
    currents = {names[i]: body["current"] for i, body in enumerate(reported)}
    flags = {names[i]: [v["id"] for v in body["voices"] if v.get("current")] for i, body in enumerate(reported)}
    ok = all(value == chosen for value in currents.values()) and all(f == [chosen] for f in flags.values())
    report.result(
        ok,
        "1b",
        f"current voice {chosen!r} set on {names[b]} is reported by "
        f"{sum(value == chosen for value in currents.values())}/{n} replicas" + ("" if ok else f": {currents} {flags}"),
    )
    restored = await http.post(f"{urls[b]}/v1/voices/{previous}/set")
    if restored.status_code != 200:
        report.note("1b", f"could not restore the current voice {previous!r}: {restored.status_code}")

    # A delete on a third replica is seen by all.
    deleted = await http.delete(f"{urls[c]}/v1/voices/{voice_id}")
    if deleted.status_code != 200:
        raise CheckFailed(f"delete on {names[c]}: {deleted.status_code} {deleted.text[:300]}")
    listings = await gather(*[lambda url=url: custom_voices(http, url) for url in urls])
    still = [names[i] for i, listed in enumerate(listings) if voice_id in listed]
    again = await http.delete(f"{urls[a]}/v1/voices/{voice_id}")
    report.result(
        not still and again.status_code == 404,
        "1c",
        f"deleted on {names[c]}, gone from {n - len(still)}/{n} replicas; "
        f"a second delete on {names[a]}: {again.status_code}" + (f"; still listed on {still}" if still else ""),
    )


# -- check 2: the name race ---------------------------------------------------------


async def check_name_race(
    report: Report, http: httpx.AsyncClient, urls: list[str], names: list[str], reference: bytes
) -> None:
    n = len(urls)
    token = secrets.token_hex(3)
    outcomes: list[list[int]] = []
    bad: list[str] = []
    latencies: list[float] = []
    for attempt in range(RACE_TRIES):
        pair = (attempt % n, (attempt + 1) % n)
        name = f"Contested {token} {attempt}"
        go = trio.Event()
        answers: dict[int, httpx.Response] = {}

        async def post(
            slot: int,
            index: int,
            name: str = name,
            go: trio.Event = go,
            answers: dict[int, httpx.Response] = answers,
        ) -> None:
            await go.wait()
            started = time.monotonic()
            # One casefolded spelling per replica: the same name all the same.
            answers[slot] = await create_voice(http, urls[index], name if slot == 0 else name.upper(), reference)
            latencies.append(time.monotonic() - started)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for slot, index in enumerate(pair):
                    nursery.start_soon(post, slot, index)
                await trio.sleep(0.05)  # both requests under way, waiting: then together
                go.set()
        codes = sorted(response.status_code for response in answers.values())
        outcomes.append(codes)
        loser = [r for r in answers.values() if r.status_code == 409]
        if codes != [201, 409] or loser[0].json()["error"]["code"] != "voice_exists":
            bad.append(
                f"try {attempt} ({names[pair[0]]}/{names[pair[1]]}): {codes} "
                + " | ".join(r.text[:120] for r in answers.values())
            )
        # The winner is listed by every replica, once; then it is deleted, freeing the name.
        for response in answers.values():
            if response.status_code == 201:
                winner = response.json()
                listings = await gather(*[lambda url=url: custom_voices(http, url) for url in urls])
                same = [sum(v["name"].casefold() == name.casefold() for v in listed.values()) for listed in listings]
                if same != [1] * n:
                    bad.append(f"try {attempt}: the name is listed {same} times by the replicas")
                await http.delete(f"{urls[pair[1]]}/v1/voices/{winner['id']}")
    good = sum(codes == [201, 409] for codes in outcomes)
    report.result(
        not bad,
        "2",
        f"name race: {good}/{RACE_TRIES} tries gave one 201 + one 409 voice_exists "
        f"(create p50 {ms(percentile(latencies, 0.5))}, max {ms(max(latencies))})",
    )
    for line in bad[:5]:
        info(line)


# -- check 3: the engine switched fleet-wide ------------------------------------------------


async def engine_state(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    body = (await http.get(url + "/v1/engines")).json()
    current = next(e for e in body["engines"] if e["current"])
    return body["current"], current.get("config") or {}, body["engines"]


async def switch_and_converge(
    report: Report,
    check: str,
    http: httpx.AsyncClient,
    urls: list[str],
    names: list[str],
    via: int,
    engine: str,
    config: dict[str, Any],
    run_limit: float = CONVERGE_TARGET,
) -> bool:
    """Switch on ``urls[via]``; poll every replica's /health until all run the switch's generation.

    Every replica must *see* the switch (report its generation as desired, or run it) within
    :data:`CONVERGE_TARGET`, and *run* it within ``run_limit`` (the same, unless loading the
    engine itself takes longer: a model engine loading on every replica at once on shared cores).
    """
    started = time.monotonic()
    response = await http.post(
        urls[via] + "/v1/engines/switch", json={"engine_type": engine, "config": config}, timeout=120
    )
    switch_time = time.monotonic() - started
    if response.status_code != 200:
        report.result(False, check, f"switch to {engine} on {names[via]}: {response.status_code} {response.text[:300]}")
        return False
    body = response.json()
    generation = body.get("generation")
    answered = time.monotonic()
    seen: dict[str, dict[str, Any]] = {}
    converged_at: dict[str, float] = {}
    noticed_at: dict[str, float] = {}

    def state(health: dict[str, Any]) -> str:
        fleet = health.get("fleet") or {}
        desired = fleet.get("desired") or {}
        return (
            f"engine={health.get('engine')} generation={fleet.get('generation')} "
            f"desired={desired.get('engine')}@{desired.get('generation')} status={fleet.get('status')} "
            f"error={fleet.get('error')}"
        )

    def converged(health: dict[str, Any]) -> bool:
        fleet = health.get("fleet") or {}
        return (
            health.get("engine") == engine
            and generation is not None
            and fleet.get("generation") == generation
            and fleet.get("status") == "converged"
        )

    async def watch(index: int) -> None:
        while True:
            with contextlib.suppress(httpx.TransportError, ValueError):
                health = (await http.get(urls[index] + "/health", timeout=5)).json()
                seen[names[index]] = health
                desired = (health.get("fleet") or {}).get("desired") or {}
                if generation is not None and desired.get("generation") == generation:
                    noticed_at.setdefault(names[index], time.monotonic() - answered)
                if converged(health):
                    noticed_at.setdefault(names[index], time.monotonic() - answered)
                    converged_at[names[index]] = time.monotonic() - answered
                    return
            await trio.sleep(0.05)

    # Without the switch's generation there is nothing to converge to: look for a while, to say what was seen.
    limit = max(3 * CONVERGE_TARGET, run_limit) if generation is not None else 2.0
    with trio.move_on_after(limit):
        async with trio.open_nursery() as nursery:
            for index in range(len(urls)):
                nursery.start_soon(watch, index)
    last = max(converged_at.values()) if len(converged_at) == len(urls) else None
    noticed = max(noticed_at.values()) if len(noticed_at) == len(urls) else None
    if generation is None:
        report.result(
            False,
            check,
            f"switch to {engine} on {names[via]} answered 200 in {ms(switch_time)} without a 'generation' "
            "(this server does not record the engine in the shared store yet)",
        )
    elif last is None:
        report.result(
            False,
            check,
            f"switch to {engine} (generation {generation}) on {names[via]}: not every replica converged "
            f"within {limit:.0f} s",
        )
    else:
        assert noticed is not None  # a replica that runs the switch has seen it
        run_target = (
            f"target {CONVERGE_TARGET:.0f} s"
            if run_limit == CONVERGE_TARGET
            else f"loading {engine} on every replica at once: within {run_limit:.0f} s"
        )
        report.result(
            noticed <= CONVERGE_TARGET and last <= run_limit,
            check,
            f"switch to {engine} (generation {generation}) on {names[via]} in {ms(switch_time)}; every replica "
            f"saw it {ms(noticed)} after the answer (target {CONVERGE_TARGET:.0f} s) and runs it {ms(last)} "
            f"after ({run_target}; " + ", ".join(f"{name} {ms(t)}" for name, t in sorted(converged_at.items())) + ")",
        )
    if last is None or last > run_limit or noticed is None or noticed > CONVERGE_TARGET:
        for name in names:
            info(f"{name}: {state(seen[name]) if name in seen else 'no /health answer'}")
    return generation is not None


async def check_engine_switch(
    report: Report, http: httpx.AsyncClient, urls: list[str], names: list[str], local: bool
) -> None:
    original, original_config, engines = await engine_state(http, urls[0])
    available = {e["name"] for e in engines if e.get("available")}
    slots = dict[str, Any]({"slots": 1} if local else {})
    # A switch that loads in milliseconds (espeak-ng with another voice): the 5 s target is the fleet's own.
    fleet_wide = await switch_and_converge(report, "3a", http, urls, names, 0, "system", {"voice": "en-gb", **slots})
    if fleet_wide and "piper" in available and original != "piper":
        # A neural engine: every replica must see it within 5 s; loading the model on all of them
        # at once on shared cores is the engine's time, bounded separately.
        await switch_and_converge(report, "3b", http, urls, names, 1 % len(urls), "piper", slots, PIPER_RUN_LIMIT)
    # Back to what it was: through another replica when the switch is fleet-wide, else where it was switched.
    restore = {key: value for key, value in original_config.items() if value is not None}
    back = 2 % len(urls) if fleet_wide else 0
    if fleet_wide:
        await switch_and_converge(report, "3c", http, urls, names, back, original, restore)
    else:
        response = await http.post(
            urls[0] + "/v1/engines/switch", json={"engine_type": original, "config": restore}, timeout=120
        )
        report.note("3b", f"{names[0]} switched back to {original} on its own: {response.status_code}")


# -- check 4: rolling restart under load -------------------------------------------------------


@dataclass
class Load:
    done: int = 0
    lost: list[str] = field(default_factory=list)
    retried_server: int = 0
    retried_proxy: int = 0
    latencies: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)


def whole_wav(response: httpx.Response) -> str | None:
    """Why this 200 is not a whole WAV file, or None."""
    body = response.content
    if not body.startswith(b"RIFF"):
        return f"not a WAV body ({body[:16]!r})"
    try:
        with wave.open(io.BytesIO(body)) as audio:
            frames = audio.getnframes()
            expected = 44 + frames * audio.getsampwidth() * audio.getnchannels()
    except (wave.Error, EOFError) as error:
        return f"malformed WAV ({error})"
    if frames == 0 or expected != len(body):
        return f"WAV header says {frames} frames ({expected} bytes), body has {len(body)} bytes"
    return None


async def load_client(index: int, http: httpx.AsyncClient, url: str, stop: trio.Event, load: Load) -> None:
    number = 0
    while not stop.is_set():
        number += 1
        rid = f"fleet-{index}-{number}"
        text = f"Client {index} says request {number} of the rolling restart."
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await http.post(
                    url + "/v1/tts/generate",
                    json={"text": text},
                    headers={"X-Request-Id": f"{rid}-{attempt}"},
                    timeout=REQUEST_BUDGET,
                )
            except httpx.TransportError as error:
                load.lost.append(f"{rid}-{attempt}: {type(error).__name__}: {error}")
                break
            key = str(response.status_code) + ("p" if response.headers.get("x-proxy-error") else "")
            load.codes[key] = load.codes.get(key, 0) + 1
            if response.status_code == 200:
                problem = whole_wav(response)
                if problem is None:
                    load.done += 1
                    load.latencies.append(time.monotonic() - started)
                else:
                    load.lost.append(f"{rid}-{attempt}: 200 but {problem}")
                break
            retry_after = response.headers.get("retry-after")
            in_budget = attempt < MAX_ATTEMPTS and time.monotonic() - started < REQUEST_BUDGET - 1
            if response.status_code == 503 and retry_after is not None and in_budget:
                if response.headers.get("x-proxy-error"):
                    load.retried_proxy += 1
                else:
                    load.retried_server += 1
                try:
                    wait = float(retry_after)
                except ValueError:
                    wait = 1.0
                await trio.sleep(min(max(wait, 0.0), 1.0))
                continue
            load.lost.append(f"{rid}-{attempt}: {response.status_code} {response.text[:160]!r}")
            break


async def check_rolling_restart(
    report: Report, http: httpx.AsyncClient, replicas: list[Replica], proxy: Proxy, workers_seen: Callable[[], None]
) -> None:
    load = Load()
    stop = trio.Event()
    rows: list[str] = []
    problems: list[str] = []
    before = await proxy.servers(http)
    started = time.monotonic()
    limits = httpx.Limits(max_connections=LOAD_CLIENTS)
    async with httpx.AsyncClient(limits=limits) as clients, trio.open_nursery() as nursery:
        for index in range(LOAD_CLIENTS):
            nursery.start_soon(load_client, index, clients, proxy.url, stop, load)
        try:
            await trio.sleep(1.0)  # under load before the first restart
            for replica in replicas:
                assert replica.process is not None
                workers_seen()
                old_workers = children_of(replica.process.pid)
                t0 = time.monotonic()
                replica.process.send_signal(signal.SIGTERM)
                down = await proxy.wait_status(http, replica.name, up=False, limit=GRACEFUL_TIMEOUT + 5)
                code = await trio.to_thread.run_sync(wait_exit, replica.process, GRACEFUL_TIMEOUT + 10)
                drained = time.monotonic() - t0
                if code is None:
                    replica.process.kill()
                    await trio.to_thread.run_sync(wait_exit, replica.process, 10)
                    problems.append(f"{replica.name} still ran {ms(drained)} after SIGTERM; killed")
                elif code != 0:
                    problems.append(f"{replica.name} exited with {code} after SIGTERM")
                left = await outliving(old_workers)
                if left:
                    problems.append(f"{replica.name}'s espeak-ng workers {left} outlived it")
                replica.start()
                ready = await wait_ready(http, replica)
                up = await proxy.wait_status(http, replica.name, up=True)
                served_before = int((await proxy.servers(http))[replica.name]["stot"])
                await trio.sleep(0.5)  # some of the load on the fresh replica before the next restart
                served = int((await proxy.servers(http))[replica.name]["stot"]) - served_before
                rows.append(
                    f"{replica.name}: out of rotation {ms(down)} after SIGTERM, exited {code} after "
                    f"{ms(drained)}; fresh process ready {ms(ready)} after start, in rotation "
                    f"{ms(up)} later, then served {served} requests in 0.5 s"
                )
                if served == 0:
                    problems.append(f"{replica.name} served nothing after its restart")
            await trio.sleep(1.0)  # and under load after the last one
        finally:
            stop.set()
    elapsed = time.monotonic() - started
    after = await proxy.servers(http)
    proxy_retries = sum(int(after[n]["wretr"] or 0) - int(before[n]["wretr"] or 0) for n in after)
    proxy_redispatches = sum(int(after[n]["wredis"] or 0) - int(before[n]["wredis"] or 0) for n in after)
    total = load.done + len(load.lost)
    report.result(
        not load.lost and not problems and load.done > 0,
        "4",
        f"rolling restart of {len(replicas)} replicas under load ({LOAD_CLIENTS} clients, {elapsed:.1f} s): "
        f"{total} requests, {load.done} done, {len(load.lost)} lost; client retries: {load.retried_server} "
        f"replica 503s, {load.retried_proxy} HAProxy 503s; HAProxy retried {proxy_retries} and redispatched "
        f"{proxy_redispatches}; latency p50 {ms(percentile(load.latencies, 0.5))}, "
        f"p99 {ms(percentile(load.latencies, 0.99))}, max {ms(max(load.latencies, default=math.nan))}",
    )
    for row in rows:
        info(row)
    info(f"answers seen by the clients: {dict(sorted(load.codes.items()))}")
    for problem in problems:
        info(problem)
    for lost in load.lost[:5]:
        info(f"lost {lost}")
        rid = lost.split(":", 1)[0]
        for line in proxy.log_lines(rid):
            info(f"  haproxy: {line}")
        for replica in replicas:
            for line in tail(replica.log, 3, rid):
                info(f"  {replica.name}: {line}")


# -- check 5: SIGKILL mid-stream ---------------------------------------------------------


@dataclass
class Stream:
    replica: str
    kind: str
    started: float = 0.0
    first_audio: float | None = None
    ended: float | None = None
    outcome: str = "running"
    received: int = 0
    promised: int | None = None
    #: Set at the first audio, or at the end when there was none.
    progressed: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)

    def audio(self, size: int) -> None:
        self.received += size
        if self.first_audio is None:
            self.first_audio = time.monotonic()
            self.progressed.set()

    def end(self) -> None:
        self.ended = time.monotonic()
        self.progressed.set()
        self.finished.set()


def long_text(token: str, sentences: int) -> str:
    return " ".join(f"Stream {token} goes on with sentence {i}, and it is not over yet." for i in range(sentences))


async def sse_stream(http: httpx.AsyncClient, url: str, text: str, stream: Stream) -> None:
    stream.started = time.monotonic()
    event = ""
    try:
        async with http.stream(
            "GET", url + "/v1/tts/stream-sse", params={"text": text, "output_format": "pcm"}, timeout=10
        ) as response:
            if response.status_code != 200:
                stream.outcome = f"HTTP {response.status_code}"
                return
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event == "audio":
                        stream.audio(len(base64.b64decode(data["chunk"])))
                    elif event == "metrics":
                        stream.promised = data["total_bytes"]
                    elif event == "done":
                        stream.outcome = "done"
                    elif event == "error":
                        stream.outcome = f"error event {data.get('code')}"
            if stream.outcome == "running":
                stream.outcome = "ended without done"
    except httpx.TransportError as error:
        stream.outcome = f"{type(error).__name__}"
    finally:
        stream.end()


async def ws_stream(url: str, text: str, stream: Stream) -> None:
    stream.started = time.monotonic()
    try:
        async with trio_websocket.open_websocket_url(url.replace("http://", "ws://") + "/v1/tts/stream") as ws:
            await ws.send_message(json.dumps({"action": "generate", "text": text, "output_format": "pcm"}))
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    stream.audio(len(message))
                    continue
                data = json.loads(message)
                if data["type"] == "metrics":
                    stream.promised = data["data"]["total_bytes"]
                elif data["type"] == "done":
                    stream.outcome = "done"
                    return
                elif data["type"] == "error":
                    stream.outcome = f"error message {data.get('code')}"
                    return
    except trio_websocket.ConnectionClosed as closed:
        stream.outcome = f"ConnectionClosed {closed.reason.code if closed.reason else '-'}"
    except (trio_websocket.HandshakeError, OSError, trio.BrokenResourceError) as error:
        stream.outcome = type(error).__name__
    finally:
        stream.end()


async def check_kill(
    report: Report,
    http: httpx.AsyncClient,
    replicas: list[Replica],
    proxy: Proxy,
    reference: bytes,
) -> None:
    token = secrets.token_hex(3)
    victim_index = 1 % len(replicas)
    victim = replicas[victim_index]
    assert victim.process is not None
    streams: list[Stream] = []
    creates: list[tuple[str, str]] = []  # (name, outcome) of the creates sent to the victim
    killed = trio.Event()
    kill_at = 0.0

    async def create_loop() -> None:
        number = 0
        async with httpx.AsyncClient() as own:
            while not killed.is_set():
                number += 1
                name = f"Kill check {token} {number}"
                try:
                    response = await create_voice(own, victim.url, name, reference, seconds=10)
                    creates.append((name, str(response.status_code)))
                except httpx.TransportError as error:
                    creates.append((name, type(error).__name__))
                    return

    async with httpx.AsyncClient() as stream_http, trio.open_nursery() as nursery:
        for index, replica in enumerate(replicas):
            for kind in ("sse", "ws"):
                stream = Stream(replica.name, kind)
                streams.append(stream)
                text = long_text(f"{token}{index}{kind}", 120)
                if kind == "sse":
                    nursery.start_soon(sse_stream, stream_http, replica.url, text, stream)
                else:
                    nursery.start_soon(ws_stream, replica.url, text, stream)
        nursery.start_soon(create_loop)
        victims = [s for s in streams if s.replica == victim.name]
        with trio.fail_after(20):
            for stream in streams:
                await stream.progressed.wait()
        await trio.sleep(0.3)
        running = [s for s in victims if s.outcome == "running"]
        victim.note_workers()
        victim_workers = children_of(victim.process.pid)
        kill_at = time.monotonic()
        victim.process.send_signal(signal.SIGKILL)
        killed.set()
        await trio.to_thread.run_sync(wait_exit, victim.process, 10)
        with trio.fail_after(60):
            for stream in streams:
                await stream.finished.wait()
    if len(running) != len(victims):
        raise CheckFailed(
            f"streams on {victim.name} ended before the kill ({[s.outcome for s in victims]}): make the text longer"
        )
    detect = [(s.ended or math.inf) - kill_at for s in victims]
    failed_fast = all(s.outcome != "done" for s in victims) and max(detect) <= KILL_DETECT_TARGET
    report.result(
        failed_fast,
        "5a",
        f"SIGKILL of {victim.name} mid-stream: its {len(victims)} streams ended "
        + ", ".join(f"{s.kind} {s.outcome} after {ms(t)}" for s, t in zip(victims, detect, strict=True))
        + f" (target {KILL_DETECT_TARGET:.0f} s)",
    )
    others = [s for s in streams if s.replica != victim.name]
    whole = [s.outcome == "done" and s.promised == s.received and s.received > 0 for s in others]
    report.result(
        all(whole),
        "5b",
        f"the other {len(others)} streams: "
        + ", ".join(
            f"{s.replica} {s.kind} {s.outcome} {s.received / 44100:.0f} s audio"
            + ("" if s.promised == s.received else f" (metrics promised {s.promised} bytes, got {s.received})")
            for s in others
        )
        + f", up to {ms(max((s.ended or 0) - kill_at for s in others))} after the kill",
    )

    # HAProxy answers at once, with the killed replica not yet out of its rotation.
    async def through_proxy(count: int) -> list[int]:
        codes = []
        for number in range(count):
            with contextlib.suppress(httpx.TransportError):
                response = await http.post(
                    proxy.url + "/v1/tts/generate", json={"text": f"After the kill, request {number} of {token}."}
                )
                codes.append(response.status_code if whole_wav(response) is None else -response.status_code)
                continue
            codes.append(0)
        return codes

    codes = await through_proxy(6)
    left = await outliving(victim_workers)
    report.result(
        codes == [200] * len(codes) and not left,
        "5c",
        f"through HAProxy right after the kill: {codes.count(200)}/{len(codes)} generate requests answered 200"
        + (f" ({codes})" if codes != [200] * len(codes) else "")
        + f"; the killed replica's {len(victim_workers)} espeak-ng workers "
        + (f"{left} still run 3 s later" if left else "exited"),
    )
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    # The store: the same whole voices on every replica, before and after the killed one is replaced.
    survivors = [r for r in replicas if r is not victim]
    interrupted = [name for name, outcome in creates if not outcome.isdigit()]
    committed = [name for name, outcome in creates if outcome == "201"]
    problems = await store_problems(http, [r.url for r in survivors], [r.name for r in survivors])
    staging_before = sorted(p.name for p in victim.voices.glob(".tmp-*"))
    victim.start()
    ready = await wait_ready(http, victim)
    up = await proxy.wait_status(http, victim.name, up=True)
    problems += await store_problems(http, [r.url for r in replicas], [r.name for r in replicas])
    listed = {v["name"] for v in (await custom_voices(http, replicas[0].url)).values()}
    missing = [name for name in committed if name not in listed]
    if missing:
        problems.append(f"created (201) but not listed: {missing}")
    # A create cut by the kill: its voice is there whole, or not at all; then may its name be used again?
    reuse: list[str] = []
    for name in interrupted:
        if name in listed:
            reuse.append(f"{name!r}: committed before the kill, listed by all")
            continue
        again = await create_voice(http, survivors[0].url, name, reference)
        reuse.append(f"{name!r}: not listed; created again on {survivors[0].name}: {again.status_code}")
        if again.status_code == 409:
            report.note(
                "5d",
                f"the name {name!r} of a create cut by the kill is not listed anywhere, yet a new create of it "
                f"is refused (409 {again.json()['error']['code']}): its staging directory "
                f"(.tmp-<id>) keeps the claim live until it is {STALE_SECONDS:.0f} s old",
            )
    through = await http.get(proxy.url + "/v1/voices")
    codes_after = await through_proxy(3)
    ok = not problems and through.status_code == 200 and codes_after == [200] * 3
    report.result(
        ok,
        "5d",
        f"store after the kill: the {len(listed)} custom voices are listed alike and whole by every replica "
        f"({len(committed)} created on {victim.name} before the kill, {len(interrupted)} cut by it); "
        f"{victim.name} replaced (ready {ms(ready)}, in rotation {ms(up)} later); through HAProxy "
        f"GET /v1/voices {through.status_code} and generate {codes_after}"
        + (f"; staging left on disk: {staging_before}" if staging_before else "; no staging left on disk"),
    )
    for line in reuse + problems:
        info(line)


async def store_problems(http: httpx.AsyncClient, urls: list[str], names: list[str]) -> list[str]:
    """What makes the replicas' listings differ, or a listed custom voice incomplete."""
    problems = []
    listings = await gather(*[lambda url=url: custom_voices(http, url) for url in urls])
    reference = listings[0]
    for name, listed in zip(names, listings, strict=True):
        if listed != reference:
            problems.append(f"{name} lists {sorted(listed)}, {names[0]} lists {sorted(reference)}")
    for voice in reference.values():
        absent = [
            key
            for key in ("id", "name", "language", "duration", "checksum", "created", "sample_rate")
            if not voice.get(key)
        ]
        if absent or not 3 <= float(voice.get("duration") or 0) <= 30:
            problems.append(f"voice {voice.get('id')} is not whole: {voice}")
    return problems


# -- main -------------------------------------------------------------------------


async def run_local(report: Report, count: int, work: Path, keep: list[Any]) -> None:
    voices_dir = work / "shared-voices"
    logs = work / "logs"
    logs.mkdir()
    ports: set[int] = set()
    while len(ports) < count + 2:
        ports.add(free_port())
    port_list = sorted(ports)
    replicas = [Replica(f"r{i}", port_list[i], voices_dir, logs) for i in range(count)]
    proxy = Proxy(port_list[count], port_list[count + 1], work / "haproxy.cfg", logs / "haproxy.log")
    keep.extend(replicas)
    keep.append(proxy)
    reference = make_reference()
    config = proxy.write_config(replicas)
    print(f"     fleet check: {count} replicas, HAProxy on {proxy.url}, work in {work}", flush=True)
    for line in config.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            info(f"| {line}")

    def workers_seen() -> None:
        for replica in replicas:
            replica.note_workers()

    async with httpx.AsyncClient(timeout=30) as http:
        started = time.monotonic()
        for replica in replicas:
            replica.start()
        times = await gather(*[lambda replica=replica: wait_ready(http, replica) for replica in replicas])
        proxy.start()
        with trio.fail_after(10):
            for replica in replicas:
                await proxy.wait_status(http, replica.name, up=True)
        info(
            f"{count} replicas ready in {ms(max(times))}, all in HAProxy's rotation "
            f"{ms(time.monotonic() - started)} after the start"
        )
        urls = [replica.url for replica in replicas]
        names = [replica.name for replica in replicas]
        await state_checks(report, http, urls, names, reference, local=True)
        workers_seen()
        await guarded(report, "4", 90, lambda: check_rolling_restart(report, http, replicas, proxy, workers_seen))
        workers_seen()
        await guarded(report, "5", 60, lambda: check_kill(report, http, replicas, proxy, reference))
        workers_seen()


async def state_checks(
    report: Report, http: httpx.AsyncClient, urls: list[str], names: list[str], reference: bytes, local: bool
) -> None:
    await guarded(report, "1", 30, lambda: check_voices(report, http, urls, names, reference))
    await guarded(report, "2", 90, lambda: check_name_race(report, http, urls, names, reference))
    await guarded(report, "3", 120, lambda: check_engine_switch(report, http, urls, names, local))


async def guarded(report: Report, check: str, limit: float, run: Callable[[], Awaitable[None]]) -> None:
    """Run one check within ``limit`` seconds; what it raises is its failure, and the next check still runs."""
    try:
        with trio.fail_after(limit):
            await run()
    except trio.TooSlowError:
        report.result(False, check, f"did not finish within {limit:.0f} s")
    except (
        CheckFailed,
        httpx.HTTPError,
        trio_websocket.HandshakeError,
        subprocess.SubprocessError,
        OSError,
        AssertionError,
        KeyError,
        ValueError,
    ) as error:
        report.result(False, check, f"{type(error).__name__}: {error}")


async def run_external(report: Report, urls: list[str], headers: dict[str, str]) -> None:
    reference = make_reference()
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        for url in urls:
            response = await http.get(url + "/ready")
            if response.status_code != 200:
                raise CheckFailed(f"{url}/ready: {response.status_code} {response.text[:200]}")
        await state_checks(report, http, urls, names_of(urls, None), reference, local=False)


def cleanup(keep: list[Any], work: Path | None, keep_work: bool) -> None:
    for item in keep:
        if isinstance(item, Proxy) and item.process is not None:
            stop_process(item.process, 3)
    for item in keep:
        if isinstance(item, Replica):
            item.note_workers()
            if item.process is not None:
                stop_process(item.process, GRACEFUL_TIMEOUT + 5)
    for item in keep:
        if isinstance(item, Replica):
            for pid in item.workers:
                if alive(pid):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
    if work is not None and not keep_work:
        shutil.rmtree(work, ignore_errors=True)


def _terminated(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, default=3, help="replicas to start (default 3)")
    parser.add_argument(
        "--urls", help="comma-separated base URLs of running replicas: run only the state checks (1-3) against them"
    )
    parser.add_argument("--api-key", default=os.environ.get("TTS_API_KEY"), help="admin key for --urls (TTS_API_KEY)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configuration)")
    args = parser.parse_args(argv)
    report = Report()
    started = time.monotonic()
    keep: list[Any] = []
    work: Path | None = None
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if args.urls:
            urls = [url.strip().rstrip("/") for url in args.urls.split(",") if url.strip()]
            if len(urls) < 2:
                parser.error("--urls needs at least two replicas")
            headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
            trio.run(run_external, report, urls, headers)
        else:
            if args.replicas < 2:
                parser.error("--replicas must be at least 2")
            if shutil.which("haproxy") is None:
                print("fleet check: haproxy is not installed (scripts/fleet-check.sh installs it)", file=sys.stderr)
                return 2
            work = Path(tempfile.mkdtemp(prefix="tts-fleet-check-"))
            trio.run(run_local, report, args.replicas, work, keep)
    except (CheckFailed, httpx.HTTPError, trio.TooSlowError, OSError, subprocess.SubprocessError) as error:
        report.result(False, "setup", f"{type(error).__name__}: {error}")
    except KeyboardInterrupt as interrupted:
        report.result(False, "setup", f"interrupted ({interrupted})")
    finally:
        failed_logs = report.failures and work is not None and not args.keep
        if failed_logs:
            for item in keep:
                if isinstance(item, Replica):
                    for line in tail(item.log, 6, "ERROR") + tail(item.log, 4, "Traceback"):
                        info(f"{item.name} log: {line}")
        cleanup(keep, work, args.keep)
    total = time.monotonic() - started
    verdict = "all checks passed" if report.failures == 0 else f"{report.failures} check(s) FAILED"
    print(f"fleet check: {verdict} in {total:.1f} s" + (f" (kept {work})" if args.keep and work else ""), flush=True)
    return 0 if report.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
