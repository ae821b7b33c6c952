"""The seed's JavaScript WebSocket client, unmodified, in headless Chromium.

The seed client hands every binary message to ``decodeAudioData``, so each
binary message must be a complete audio file. The page is instrumented from
outside the seed's code: ``decodeAudioData`` and ``WebSocket`` are wrapped to
count what was received and what decoded; the seed snippet itself runs as
published, with only its URL pointed at the test server.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import trio

from .conftest import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make test installs it)")

# The seed README's JavaScript client, verbatim except for the URL.
SEED_CLIENT = """
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


def run_seed_client(base_url: str, ws_url: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base_url + "/health")
            page.add_script_tag(content=INSTRUMENT)
            page.add_script_tag(content=SEED_CLIENT.replace("__URL__", ws_url))  # runs as a page script
            page.wait_for_function(
                "window.__types.includes('done') && window.__binary > 0"
                " && window.__decoded.length + window.__failed.length === window.__binary",
                timeout=20_000,
            )
            result: dict[str, Any] = page.evaluate(
                "({binary: window.__binary, decoded: window.__decoded, failed: window.__failed, types: window.__types})"
            )
            return result
        finally:
            browser.close()


async def test_seed_javascript_client_decodes_every_binary_message(live_server: LiveServer) -> None:
    result = await trio.to_thread.run_sync(run_seed_client, live_server.base_url, live_server.ws_url)
    assert result["failed"] == []
    assert len(result["decoded"]) == result["binary"] >= 1
    assert 0.5 < sum(result["decoded"]) < 3.0  # "Hello, world!" is about a second of speech
    assert result["types"][0] == "start"
    assert result["types"][-2:] == ["metrics", "done"]
    assert set(result["types"][1:-2]) == {"timings"}
