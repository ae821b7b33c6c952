"""In headless Chromium: the playground, the docs page, and the original API's JavaScript client.

The original client hands every binary message to ``decodeAudioData``, so each
binary message must be a complete audio file. The page is instrumented from
outside the client's code: ``decodeAudioData`` and ``WebSocket`` are wrapped to
count what was received and what decoded; the client snippet itself runs as
published, inside the playground page, with only its URL pointed at the test
server.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from tests.support.live import PARAGRAPH, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make test installs it)")

# The original API's documented JavaScript client, verbatim except for the URL.
ORIGINAL_CLIENT = """
const ws = new WebSocket("__URL__");

ws.onmessage = (event) => {
    if (event.data instanceof Blob) {
        // Audio chunk - play it
        const audioContext = new AudioContext();
        event.data.arrayBuffer().then(buffer => {
            audioContext.decodeAudioData(buffer, decoded => {
                const source = audioContext.createBufferSource();
                source.buffer = decoded;
                source.connect(audioContext.destination);
                source.start();
            });
        });
    } else {
        // JSON message
        const msg = JSON.parse(event.data);
        console.log(msg);
    }
};

ws.onopen = () => {
    ws.send(JSON.stringify({
        action: "generate",
        text: "Hello, world!"
    }));
};
"""

INSTRUMENT = """
window.__binary = 0; window.__decoded = []; window.__failed = []; window.__types = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = function (url, protocols) {
    const socket = new NativeWebSocket(url, protocols);
    socket.addEventListener("message", (event) => {
        if (event.data instanceof Blob) { window.__binary += 1; }
        else { window.__types.push(JSON.parse(event.data).type); }
    });
    return socket;
};
window.WebSocket.prototype = NativeWebSocket.prototype;
const nativeDecode = AudioContext.prototype.decodeAudioData;
AudioContext.prototype.decodeAudioData = function (buffer, ok, fail) {
    return nativeDecode.call(this, buffer,
        (decoded) => { window.__decoded.push(decoded.duration); if (ok) { ok(decoded); } },
        (error) => { window.__failed.push(String(error)); if (fail) { fail(error); } });
};
"""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def in_browser(base_url: str, script: Callable[[Page], Any]) -> Any:
    """Run ``script`` on a fresh page of the app in headless Chromium (call from a thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base_url + "/")
            return script(page)
        finally:
            browser.close()


def run_original_client(base_url: str, ws_url: str) -> dict[str, Any]:
    def script(page: Page) -> dict[str, Any]:
        page.add_script_tag(content=INSTRUMENT)
        page.add_script_tag(content=ORIGINAL_CLIENT.replace("__URL__", ws_url))  # runs as a page script
        page.wait_for_function(
            "window.__types.includes('done') && window.__binary > 0"
            " && window.__decoded.length + window.__failed.length === window.__binary",
            timeout=20_000,
        )
        result: dict[str, Any] = page.evaluate(
            "({binary: window.__binary, decoded: window.__decoded, failed: window.__failed, types: window.__types})"
        )
        return result

    return dict(in_browser(base_url, script))


async def test_original_javascript_client_decodes_every_binary_message(live_server: LiveServer) -> None:
    result = await trio.to_thread.run_sync(run_original_client, live_server.base_url, live_server.ws_url)
    assert result["failed"] == []
    assert len(result["decoded"]) == result["binary"] >= 1
    assert 0.5 < sum(result["decoded"]) < 3.0  # "Hello, world!" is about a second of speech
    assert result["types"][0] == "start"
    assert result["types"][-2:] == ["metrics", "done"]
    assert set(result["types"][1:-2]) == {"timings"}


def wait_status(page: Page, status: str) -> None:
    page.wait_for_function(f"document.getElementById('status').textContent === {status!r}", timeout=20_000)


async def test_playground_streams_plays_and_reports(live_server: LiveServer) -> None:
    def script(page: Page) -> dict[str, Any]:
        page.wait_for_function("document.getElementById('voice').options.length > 10")
        page.fill("#text", "Hello from the playground. A second sentence follows.")
        page.select_option("#format", "pcm")
        page.click("#speak")
        wait_status(page, "done")
        return dict(
            page.evaluate(
                """() => {
                const canvas = document.getElementById('waveform');
                const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let drawn = 0;
                for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) drawn++; }
                return {ttfa: document.getElementById('ttfa').textContent,
                        received: document.getElementById('received').textContent,
                        sentence: document.getElementById('current-sentence').textContent,
                        server: document.getElementById('server').textContent, drawn};
            }"""
            )
        )

    result = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    assert re.fullmatch(r"\d+\.\d ms", result["ttfa"])
    assert 1.5 < float(result["received"].split()[0]) < 10
    assert result["sentence"] == "A second sentence follows."
    assert result["server"].startswith("engine system")
    assert result["drawn"] > 100


async def test_playground_stop_button_stops_the_audio(live_server: LiveServer) -> None:
    def script(page: Page) -> tuple[str, str]:
        page.fill("#text", " ".join([PARAGRAPH] * 30))  # ~44 MB of audio in all
        page.click("#speak")
        page.wait_for_function("Number(document.getElementById('bytes').textContent) > 0")
        page.click("#stop")
        wait_status(page, "stopped")
        before = page.text_content("#bytes") or ""
        page.wait_for_timeout(300)
        return before, page.text_content("#bytes") or ""

    before, after = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    assert before == after
    assert int(before) < 30_000_000  # the stop cut the stream short


async def test_playground_compressed_format_ends_in_a_player(live_server: LiveServer) -> None:
    def script(page: Page) -> str:
        page.select_option("#format", "mp3")
        page.click("#speak")
        wait_status(page, "done")
        return page.get_attribute("#player", "src") or ""

    src = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    assert src.startswith("blob:")


async def test_docs_page_lists_every_operation(live_server: LiveServer) -> None:
    def script(page: Page) -> int:
        page.goto(live_server.base_url + "/docs")
        page.wait_for_selector(".operation")
        return int(page.locator(".operation").count())

    count = await trio.to_thread.run_sync(in_browser, live_server.base_url, script)
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        spec = (await http.get("/openapi.json")).json()
    assert count == sum(len(operations) for operations in spec["paths"].values())
