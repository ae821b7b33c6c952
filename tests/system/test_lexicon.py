"""The pronunciation lexicon over a real server: routes, keys, preview, TSV, replicas, and the CLI."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.support.live import LiveServer, start_live_server
from tests.system.test_cli_client import cli, server_json
from tts_trio.settings import Settings
from tts_trio.voices.lexicon import FILE_NAME

USER = "user-key-0123456789"
ADMIN = "admin-key-9876543210"
TSV = {"Content-Type": "text/tab-separated-values"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def secured(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    settings = Settings.load(
        {"voices_path": tmp_path / "voices", "slots": 1, "api_keys": USER, "admin_keys": ADMIN}, environ={}
    )
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()  # type: ignore[misc]


async def test_set_list_preview_and_delete(live_server: LiveServer, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        assert (await http.get("/v1/lexicon")).json() == {"entries": []}
        put = await http.put("/v1/lexicon/US", json={"spoken": "United States", "case_sensitive": True})
        assert put.status_code == 200, put.text
        assert put.json() == {"word": "US", "spoken": "United States", "case_sensitive": True}
        assert (await http.put("/v1/lexicon/New%20York", json={"spoken": "noo york"})).status_code == 200
        assert (await http.put("/v1/lexicon/24%2F7", json={"spoken": "all day"})).json()["word"] == "24/7"
        assert (await http.put("/v1/lexicon/tomato", json={"phonemes": "təˈmɑːtoʊ"})).status_code == 200
        listed = (await http.get("/v1/lexicon")).json()["entries"]
        assert [entry["word"] for entry in listed] == ["24/7", "New York", "tomato", "US"]

        preview = await http.post("/v1/lexicon/preview", json={"text": "The US and us in new york, 24/7; a tomato."})
        assert preview.status_code == 200
        body = preview.json()
        assert body["text"] == "The United States and us in noo york, all day; a tomato."
        assert len(body["warnings"]) == 1 and "tomato" in body["warnings"][0]  # no phoneme input here yet
        assert body["replacements"][0] == {"word": "US", "kind": "spoken", "source": [4, 6], "target": [4, 17]}

        deleted = await http.delete("/v1/lexicon/24%2F7")
        assert (deleted.status_code, deleted.json()["deleted"]["word"]) == (200, "24/7")
        missing = await http.delete("/v1/lexicon/24%2F7")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "lexicon_entry_not_found")
    assert (settings.voices_path / FILE_NAME).is_file()
    assert not list(settings.voices_path.glob(".tmp-*"))


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/lexicon/cat", {"spoken": ""}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": "/kat/"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": "a", "phonemes": "b"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": None, "phonemes": "kæt"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": "kitty", "case_sensitive": "yes"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": "kitty", "loud": True}, 422, "invalid_parameter"),
        ("/v1/lexicon/cat", ["kitty"], 400, "bad_request"),
        ("/v1/lexicon/%23tag", {"spoken": "tag"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/" + "x" * 101, {"spoken": "long"}, 422, "lexicon_entry_invalid"),
        ("/v1/lexicon/cat", {"spoken": "y" * 401}, 422, "lexicon_entry_invalid"),
    ],
)
async def test_bad_entries_are_refused_with_our_error_shape(
    live_server: LiveServer, path: str, body: object, status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        response = await http.put(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
        assert response.json()["error"]["message"]
        assert (await http.get("/v1/lexicon")).json() == {"entries": []}


async def test_preview_checks_its_text(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        for body, code in (
            ({"text": "  "}, "empty_text"),
            ({"text": 3}, "invalid_parameter"),
            ({}, "invalid_parameter"),
        ):
            response = await http.post("/v1/lexicon/preview", json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (422, code)
        too_long = await http.post("/v1/lexicon/preview", json={"text": "a" * 20_001})
        assert (too_long.status_code, too_long.json()["error"]["code"]) == (413, "text_too_long")
        plain = await http.post("/v1/lexicon/preview", json={"text": "Nothing to change"})
        assert plain.json() == {"text": "Nothing to change", "replacements": [], "warnings": []}


async def test_tsv_import_and_export(live_server: LiveServer) -> None:
    tsv = "# words\nNew York\tnoo york\nUS\tUnited States\tcase_sensitive\ntomato\t/təˈmɑːtoʊ/\n"
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        await http.put("/v1/lexicon/old", json={"spoken": "gone after the import"})
        imported = await http.put("/v1/lexicon", content=tsv.encode(), headers=TSV)
        assert (imported.status_code, imported.json()) == (200, {"entries": 3})
        exported = await http.get("/v1/lexicon", params={"format": "tsv"})
        assert exported.headers["content-type"].startswith("text/tab-separated-values")
        assert exported.text.splitlines()[1:] == [
            "New York\tnoo york",
            "tomato\t/təˈmɑːtoʊ/",
            "US\tUnited States\tcase_sensitive",
        ]
        again = await http.put("/v1/lexicon", content=exported.content, headers=TSV)
        assert again.json() == {"entries": 3}

        bad = await http.put("/v1/lexicon", content=b"# ok\ncat\tkitty\ndog doggy\n", headers=TSV)
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert (error["code"], error["line"]) == ("lexicon_import_invalid", 3) and "line 3" in error["message"]
        # All or nothing: the lexicon is as it was before the bad import.
        assert [e["word"] for e in (await http.get("/v1/lexicon")).json()["entries"]] == ["New York", "tomato", "US"]
        not_utf8 = await http.put("/v1/lexicon", content=b"caf\xe9\tkafay\n", headers=TSV)
        assert (not_utf8.status_code, not_utf8.json()["error"]["line"]) == (422, 1)
        empty = await http.put("/v1/lexicon", content=b"", headers=TSV)
        assert empty.status_code == 400
        assert (await http.put("/v1/lexicon", content=b"# nothing\n", headers=TSV)).json() == {"entries": 0}
        unknown = await http.get("/v1/lexicon", params={"format": "csv"})
        assert unknown.status_code == 422


async def test_writes_need_the_admin_key_and_reads_a_user_key(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url, timeout=30) as http:
        assert (await http.get("/v1/lexicon")).status_code == 401
        assert (await http.post("/v1/lexicon/preview", json={"text": "hi"})).status_code == 401
        for method, path, kwargs in (
            ("PUT", "/v1/lexicon/cat", {"json": {"spoken": "kitty"}}),
            ("DELETE", "/v1/lexicon/cat", {}),
            ("PUT", "/v1/lexicon", {"content": b"cat\tkitty\n", "headers": {**TSV, **auth(USER)}}),
        ):
            headers = kwargs.pop("headers", auth(USER))
            response = await http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
        admin = await http.put("/v1/lexicon/cat", json={"spoken": "kitty"}, headers=auth(ADMIN))
        assert admin.status_code == 200
        assert (await http.get("/v1/lexicon", headers=auth(USER))).json()["entries"][0]["word"] == "cat"
        preview = await http.post("/v1/lexicon/preview", json={"text": "a cat"}, headers=auth(USER))
        assert preview.json()["text"] == "a kitty"
        assert (await http.delete("/v1/lexicon/cat", headers=auth(ADMIN))).status_code == 200


async def test_replicas_on_one_directory_share_the_lexicon(settings: Settings, nursery: trio.Nursery) -> None:
    first, stop_first = await start_live_server(nursery, settings)
    second, stop_second = await start_live_server(nursery, settings)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await http.put(f"{first.base_url}/v1/lexicon/cat", json={"spoken": "kitty"})
            preview = await http.post(f"{second.base_url}/v1/lexicon/preview", json={"text": "cat"})
            assert preview.json()["text"] == "kitty"
            await http.put(f"{second.base_url}/v1/lexicon/dog", json={"spoken": "doggy"})
            await http.delete(f"{first.base_url}/v1/lexicon/cat")
            listed = (await http.get(f"{second.base_url}/v1/lexicon")).json()["entries"]
            assert [entry["word"] for entry in listed] == ["dog"]
    finally:
        await stop_second()
        await stop_first()


async def test_cli_lexicon_commands(live_server: LiveServer, tmp_path: Path) -> None:
    url = live_server.base_url
    empty = await cli(url, "lexicon", "list")
    assert (empty.returncode, empty.stdout.decode().strip()) == (0, "the lexicon is empty")
    set_spoken = await cli(url, "lexicon", "set", "US", "--spoken", "United States", "--case-sensitive")
    assert (set_spoken.returncode, set_spoken.stdout.decode().strip()) == (0, "US -> United States")
    set_ipa = await cli(url, "lexicon", "set", "tomato", "--phonemes", "təˈmɑːtoʊ", "--json")
    assert json.loads(set_ipa.stdout) == {"word": "tomato", "phonemes": "təˈmɑːtoʊ", "case_sensitive": False}
    both = await cli(url, "lexicon", "set", "x", "--spoken", "a", "--phonemes", "b")
    assert both.returncode == 2
    table = (await cli(url, "lexicon", "list")).stdout.decode().splitlines()
    assert table[0].split() == ["WORD", "SAYS", "CASE"]
    assert [line.split()[0] for line in table[1:]] == ["tomato", "US"]
    listed = json.loads((await cli(url, "lexicon", "list", "--json")).stdout)
    assert listed == await server_json(url, "/v1/lexicon")

    exported = tmp_path / "lexicon.tsv"
    assert (await cli(url, "lexicon", "export", str(exported))).returncode == 0
    assert "US\tUnited States\tcase_sensitive" in exported.read_text(encoding="utf-8")
    to_stdout = await cli(url, "lexicon", "export")
    assert to_stdout.stdout == exported.read_bytes()

    assert (await cli(url, "lexicon", "delete", "US")).stdout.decode().strip() == "deleted US"
    missing = await cli(url, "lexicon", "delete", "US")
    assert missing.returncode == 1 and b"lexicon_entry_not_found" in missing.stderr

    assert (await cli(url, "lexicon", "import", str(exported))).stdout.decode().strip() == "imported 2 entries"
    preview = await cli(url, "lexicon", "preview", "The US grows tomatoes.")
    assert preview.stdout.decode().strip() == "The United States grows tomatoes."

    bad = tmp_path / "bad.tsv"
    bad.write_text("ok\tfine\nbroken line\n", encoding="utf-8")
    refused = await cli(url, "lexicon", "import", str(bad))
    assert refused.returncode == 1 and b"line 2" in refused.stderr
    assert (await cli(url, "lexicon", "import", str(tmp_path / "absent.tsv"))).returncode == 2


def _seconds(wav: bytes) -> float:
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as reader:
        return float(reader.getnframes() / reader.getframerate())


async def test_the_lexicon_changes_what_is_spoken_on_every_route_and_misses_the_cache(live_server: LiveServer) -> None:
    text = "We deploy nginx. Then we deploy it again."
    spoken = "a very long and rather slowly spoken name for a web server"
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        before = await http.post("/v1/tts/generate", json={"text": text})
        again = await http.post("/v1/tts/generate", json={"text": text})
        assert before.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
        assert (await http.put("/v1/lexicon/nginx", json={"spoken": spoken})).status_code == 200
        after = await http.post("/v1/tts/generate", json={"text": text})
        assert after.headers["x-cache"] == "miss"  # the text as spoken changed, so does the key
        assert _seconds(after.content) > _seconds(before.content) + 1.5
        ssml = f"<speak>{text}</speak>"
        plain_ssml = await http.post("/v1/tts/generate", json={"text": ssml})
        assert abs(_seconds(plain_ssml.content) - _seconds(after.content)) < 0.5
        speech = await http.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "alloy", "response_format": "pcm"}
        )
        speech_seconds = len(speech.content) / 2 / 24000
        assert speech_seconds > _seconds(before.content) + 1.5
        assert (await http.delete("/v1/lexicon/nginx")).status_code == 200
        back = await http.post("/v1/tts/generate", json={"text": text})
        assert abs(_seconds(back.content) - _seconds(before.content)) < 0.3


async def test_word_timings_report_the_words_the_client_wrote(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        assert (await http.put("/v1/lexicon/nginx", json={"spoken": "engine x"})).status_code == 200
        answer = (await http.post("/v1/tts/generate", json={"text": "We run nginx today.", "timestamps": True})).json()
    timed = [word["word"] for word in answer["words"]]
    assert "nginx" in timed and "engine" not in timed, timed
    nginx = next(word for word in answer["words"] if word["word"] == "nginx")
    assert nginx["end"] > nginx["start"]


async def test_text_streamed_into_a_context_is_pronounced_too(live_server: LiveServer) -> None:
    async def streamed_seconds(text: str) -> float:
        url = live_server.base_url.replace("http://", "ws://") + "/v1/tts/stream"
        audio = 0
        async with open_websocket_url(url, max_message_size=1 << 24) as ws:
            await ws.send_message(
                json.dumps({"action": "append", "context_id": "c", "text": text, "output_format": "pcm"})
            )
            await ws.send_message(json.dumps({"action": "end", "context_id": "c"}))
            while True:
                message = json.loads(await ws.get_message())
                if message.get("type") == "audio":
                    audio += len(base64.b64decode(message["chunk"]))
                if message.get("type") in ("done", "error"):
                    assert message["type"] == "done", message
                    return audio / 2 / 22050

    plain = await streamed_seconds("We run nginx today. ")
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        spoken = "a very long and rather slowly spoken name for a web server"
        assert (await http.put("/v1/lexicon/nginx", json={"spoken": spoken})).status_code == 200
    assert await streamed_seconds("We run nginx today. ") > plain + 1.5
