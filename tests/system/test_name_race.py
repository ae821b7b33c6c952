"""Two replicas on one voice store: one name created on both at the same moment gives one 201 and one 409.

Two real server processes (``tts-trio serve``) share one ``--voices-path``
and nothing else, as replicas on one shared volume do. Each try sends the
same create to both at once; the name must be won by exactly one.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import trio

from tests.support.processes import BIN, free_port, spawn, wait_healthy

TRIES = 20

REFERENCE = subprocess.run(
    ["espeak-ng", "--stdout", "A reference recording that is long enough to become a cloned voice, surely."],
    capture_output=True,
    check=True,
).stdout


async def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = spawn([str(BIN), "serve", "--port", str(port), "--voices-path", str(root), "--slots", "1"], {})
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, process)
    async with httpx.AsyncClient() as http:
        ready = await http.get(url + "/ready")
        assert ready.status_code == 200, ready.text  # healthy means ready here: the store opened
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def custom_names(http: httpx.AsyncClient) -> dict[str, str]:
    listed = (await http.get("/v1/voices")).json()["voices"]
    return {voice["name"]: voice["id"] for voice in listed if voice["kind"] == "custom"}


async def test_one_name_created_on_two_replicas_at_once_is_won_by_one(tmp_path: Path) -> None:
    root = tmp_path / "shared-voices"
    servers = [await start_server(root) for _ in range(2)]
    try:
        clients = [httpx.AsyncClient(base_url=url, timeout=30) for _, url in servers]
        first, second = clients
        try:
            outcomes: list[list[int]] = []
            winners: list[dict[str, str]] = []
            for attempt in range(TRIES):
                name = f"Contested {attempt}"
                statuses: dict[int, httpx.Response] = {}
                go = trio.Event()

                async def post(
                    index: int,
                    http: httpx.AsyncClient,
                    name: str = name,
                    go: trio.Event = go,
                    statuses: dict[int, httpx.Response] = statuses,
                ) -> None:
                    await go.wait()
                    statuses[index] = await http.post(
                        "/v1/voices/create",
                        # One casefolded spelling per replica: the same name all the same.
                        data={"name": name if index == 0 else name.upper(), "language": "en"},
                        files={"audio_file": ("ref.wav", REFERENCE, "audio/wav")},
                    )

                async with trio.open_nursery() as nursery:
                    for index, http in enumerate(clients):
                        nursery.start_soon(post, index, http)
                    await trio.sleep(0.05)  # both connected and waiting: then start them together
                    go.set()
                codes = sorted(response.status_code for response in statuses.values())
                outcomes.append(codes)
                assert codes == [201, 409], (attempt, [response.text for response in statuses.values()])
                loser = next(response for response in statuses.values() if response.status_code == 409)
                assert loser.json()["error"]["code"] == "voice_exists"
                winner = next(response for response in statuses.values() if response.status_code == 201).json()
                winners.append(winner)
                # Both replicas list the one voice that won.
                for http in clients:
                    assert (await custom_names(http)).get(winner["name"]) == winner["id"]
            assert outcomes == [[201, 409]] * TRIES

            # A delete on one replica frees the name for the other, and only then.
            assert len(await custom_names(first)) == len(await custom_names(second)) == TRIES
            taken = winners[0]["id"]
            assert (
                await second.post(
                    "/v1/voices/create",
                    data={"name": "contested 0"},
                    files={"audio_file": ("ref.wav", REFERENCE, "audio/wav")},
                )
            ).status_code == 409
            assert (await first.delete(f"/v1/voices/{taken}")).status_code == 200
            again = await second.post(
                "/v1/voices/create",
                data={"name": "contested 0"},
                files={"audio_file": ("ref.wav", REFERENCE, "audio/wav")},
            )
            assert again.status_code == 201, again.text
            assert (await custom_names(first)).get("contested 0") == again.json()["id"]
            assert taken not in (await custom_names(first)).values()
        finally:
            for http in clients:
                await http.aclose()
    finally:
        for process, _ in servers:
            stop(process)
