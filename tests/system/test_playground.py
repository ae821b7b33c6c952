"""The playground in headless Chromium: words and captions in sync with playback, SSML, keys, the lexicon editor.

The page exposes what it received and the clock it highlights by:
``window.__ttsWords`` (every word's ``start``/``end`` from the timings),
``window.__ttsTimings`` (the timings messages) and ``window.__ttsPlaybackTime()``
(seconds of the stream heard: the AudioContext's clock mapped through the
buffers' schedule for pcm/wav, the ``<audio>`` element's ``currentTime`` for
compressed formats). The tests compare the word lit in the DOM with the
word the timings say is playing at that moment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tests.support.live import PARAGRAPH, LiveServer, start_live_server
from tests.system.test_browser import CHROMIUM, in_browser
from tts_trio.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make test installs it)")

USER = "user-key-0123456789"
ADMIN = "admin-key-9876543210"
TWO_SENTENCES = "The quick brown fox jumps over the lazy dog. Then it runs far away into the dark forest."

#: The highlighted word, the page's clock and the words' timings, read in one go.
SAMPLE = """(playerClock) => {
    const lit = document.querySelectorAll('#transcript .word.current');
    return {
        lit: lit.length,
        index: lit.length ? Number(lit[0].dataset.index) : -1,
        text: lit.length ? lit[0].textContent : null,
        shown: Number(document.getElementById('transcript').dataset.time),
        known: Number(document.getElementById('transcript').dataset.words),
        knownCues: Number(document.getElementById('captions').dataset.cues),
        time: playerClock ? document.getElementById('player').currentTime : window.__ttsPlaybackTime(),
        starts: window.__ttsWords.map((word) => word.start),
        cue: Array.from(document.querySelectorAll('#captions li')).findIndex((li) => li.classList.contains('current')),
        cueStarts: window.__ttsCues.map((cue) => cue.start),
    };
}"""

#: How far behind the clock the highlight may be (it is refreshed every 40 ms; more on a loaded machine).
LAG = 0.3


def wait_status(page: Page, status: str, timeout: float = 15_000) -> None:
    page.wait_for_function(f"document.getElementById('status').textContent === {status!r}", timeout=timeout)


def last_started(starts: list[float], time: float) -> int:
    return max((i for i, start in enumerate(starts) if start <= time), default=-1)


def check_sample(sample: dict[str, Any]) -> None:
    """The lit word (and cue) is the last one whose start was heard at the time the page last highlighted.

    That time is the playback clock of a moment ago (at most the refresh lag),
    and the words are those the page knew then.
    """
    time, shown = sample["time"], sample["shown"]
    assert 0 <= time - shown <= LAG, sample
    assert sample["lit"] == 1, sample
    assert sample["index"] == last_started(sample["starts"][: sample["known"]], shown), sample
    assert sample["cue"] == last_started(sample["cueStarts"][: sample["knownCues"]], shown), sample


def sample_playback(page: Page, player_clock: bool, count: int = 5) -> list[dict[str, Any]]:
    samples = []
    for _ in range(count):
        samples.append(dict(page.evaluate(SAMPLE, player_clock)))
        page.wait_for_timeout(230)
    return samples


async def test_highlighted_word_follows_live_playback(live_server: LiveServer) -> None:
    def script(page: Page) -> list[dict[str, Any]]:
        page.fill("#text", TWO_SENTENCES)
        page.select_option("#format", "pcm")
        page.click("#speak")
        page.wait_for_function("window.__ttsWords.length > 3 && window.__ttsPlaybackTime() > 0.3", timeout=15_000)
        return sample_playback(page, player_clock=False)

    samples = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    for sample in samples:
        check_sample(sample)
    assert samples[-1]["time"] - samples[0]["time"] > 0.6  # the clock is playback's: it moved
    assert len({sample["index"] for sample in samples}) >= 3  # and the highlight moved with it


async def test_highlighted_word_follows_the_audio_element(live_server: LiveServer) -> None:
    def script(page: Page) -> list[dict[str, Any]]:
        page.fill("#text", TWO_SENTENCES)
        page.select_option("#format", "mp3")
        page.click("#speak")
        wait_status(page, "done")
        page.wait_for_function("document.getElementById('player').currentTime > 0.3", timeout=10_000)
        return sample_playback(page, player_clock=True)

    samples = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    for sample in samples:
        check_sample(sample)
    assert len({sample["index"] for sample in samples}) >= 3


async def test_nothing_advances_after_stop(live_server: LiveServer) -> None:
    def script(page: Page) -> tuple[dict[str, Any], dict[str, Any], str]:
        page.fill("#text", " ".join([PARAGRAPH] * 3))
        page.click("#speak")
        page.wait_for_function(
            "(document.querySelector('#transcript .word.current') || {dataset: {index: -1}}).dataset.index >= 2",
            timeout=15_000,
        )
        page.click("#stop")
        wait_status(page, "stopped")
        before = dict(page.evaluate(SAMPLE, False))
        page.wait_for_timeout(800)
        after = dict(page.evaluate(SAMPLE, False))
        return before, after, page.text_content("#status") or ""

    before, after, status = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    assert status == "stopped"
    assert (after["index"], after["text"], after["time"], after["cue"]) == (
        before["index"],
        before["text"],
        before["time"],
        before["cue"],
    )
    check_sample(before)  # the word lit is the last one heard before the stop


async def test_ssml_toggle_plays_breaks_and_shows_errors(live_server: LiveServer) -> None:
    def script(page: Page) -> tuple[list[dict[str, Any]], str, str]:
        page.check("#ssml")
        page.fill("#text", 'Before the pause.<break time="800ms"/>After the pause.')
        page.click("#speak")
        wait_status(page, "done")
        words: list[dict[str, Any]] = page.evaluate(
            "window.__ttsWords.map((w) => ({word: w.word, start: w.start, end: w.end}))"
        )
        assert (page.text_content("#error") or "") == ""
        page.fill("#text", "Hello <emphasis>unclosed")
        page.click("#speak")
        page.wait_for_function("document.getElementById('error').textContent !== ''", timeout=10_000)
        return words, page.text_content("#error") or "", page.text_content("#status") or ""

    words, error, status = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    spoken = [word["word"].strip(".").lower() for word in words]
    assert spoken[:3] == ["before", "the", "pause"] and "after" in spoken
    after = spoken.index("after")
    assert words[after]["start"] - words[after - 1]["end"] >= 0.7  # the break is silence in the timings
    assert "ssml" in error.lower() or "emphasis" in error.lower()
    assert status.startswith("error:")


async def test_captions_list_cues_in_sync(live_server: LiveServer) -> None:
    def script(page: Page) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        page.fill("#text", TWO_SENTENCES)
        page.click("#speak")
        page.wait_for_function("window.__ttsCues.length === 2 && window.__ttsPlaybackTime() > 0.2", timeout=15_000)
        sample = dict(page.evaluate(SAMPLE, False))
        wait_status(page, "done")
        cues: list[dict[str, Any]] = page.evaluate(
            """Array.from(document.querySelectorAll('#captions li')).map((li) => ({
                time: li.querySelector('.cue-time').textContent, text: li.querySelector('.cue-text').textContent}))"""
        )
        timings: list[dict[str, Any]] = page.evaluate("window.__ttsTimings")
        return cues, sample, timings

    cues, sample, timings = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    assert (
        [cue["text"] for cue in cues]
        == [timing["text"] for timing in timings]
        == [
            "The quick brown fox jumps over the lazy dog.",
            "Then it runs far away into the dark forest.",
        ]
    )
    assert cues[0]["time"].startswith("00:00:00.000 → 00:00:0")
    check_sample(sample)


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


async def test_keys_gate_the_page_and_the_lexicon_editor(secured: LiveServer) -> None:
    def script(page: Page) -> dict[str, Any]:
        found: dict[str, Any] = {}
        page.wait_for_function("document.getElementById('error').textContent.includes('401')")
        page.wait_for_function("document.getElementById('lexicon-error').textContent.includes('401')")
        found["no_key"] = page.text_content("#error")
        page.click("#speak")  # the WebSocket is refused too, and the page says why
        wait_status(page, "error: 401 unauthorized: an API key is required: send Authorization: Bearer <key>")

        page.fill("#api-key", USER)
        page.click("#speak")
        wait_status(page, "done")
        found["words"] = page.evaluate("window.__ttsWords.length")
        found["error_after_key"] = page.text_content("#error")
        found["stored"] = page.evaluate("sessionStorage.getItem('tts-trio.api-key')")
        found["local"] = page.evaluate("localStorage.length")
        found["voices"] = page.evaluate("document.getElementById('voice').options.length")

        page.fill("#lexicon-word", "NYC")
        page.fill("#lexicon-value", "New York City")
        page.click("#lexicon-save")
        page.wait_for_function("document.getElementById('lexicon-error').textContent.includes('403')")
        found["user_save"] = page.text_content("#lexicon-error")

        page.fill("#api-key", ADMIN)
        page.click("#lexicon-save")
        page.wait_for_selector("#lexicon-entries tr[data-word='NYC']")
        found["row"] = page.text_content("#lexicon-entries tr[data-word='NYC']")
        found["lexicon_error"] = page.text_content("#lexicon-error")
        page.click("#lexicon-preview")
        page.wait_for_function("document.getElementById('lexicon-preview-result').textContent !== ''")
        found["preview"] = page.text_content("#lexicon-preview-result")
        page.click("#lexicon-entries tr[data-word='NYC'] .lexicon-delete")
        page.wait_for_function("document.querySelectorAll('#lexicon-entries tr').length === 0")
        return found

    found = await trio.to_thread.run_sync(in_browser, secured.base_url, script)
    assert "401 unauthorized" in found["no_key"]
    assert found["words"] > 3 and found["error_after_key"] == ""
    assert found["stored"] == USER and found["local"] == 0
    assert found["voices"] > 10
    assert "403 forbidden" in found["user_save"]
    assert "New York City" in found["row"] and found["lexicon_error"] == ""
    assert found["preview"].startswith("I live in New York City")
