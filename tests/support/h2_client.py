"""A small raw HTTP/2 client for tests: many streams on one connection, resets, WebSocket over HTTP/2.

httpx hides the things the HTTP/2 tests must control: which connection a
request uses, resetting one stream (RST_STREAM) while the connection stays
open, and RFC 8441 extended CONNECT, which no Python client offers. This one
is built on the ``h2`` state machine over any Trio stream (TCP for h2c with
prior knowledge, ``trio.SSLStream`` for h2 over TLS).

Received data is acknowledged (flow control) only when the test reads it,
so a test that stops reading puts real backpressure on the server, as a slow
client would.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import trio
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class H2StreamError(Exception):
    """The stream was reset, or the connection went away before the stream ended."""


class H2Stream:
    """One request/response exchange on an :class:`H2Client` connection."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.response = trio.Event()
        self.ended = False
        #: The error code of a RST_STREAM the server sent, if it sent one.
        self.reset_code: int | None = None
        self._send, self._receive = trio.open_memory_channel[tuple[bytes, int]](math.inf)

    async def wait_response(self) -> int:
        """Wait for the response headers; return the status."""
        await self.response.wait()
        if self.status is None:
            raise H2StreamError(f"stream {self.stream_id} ended without a response (reset {self.reset_code})")
        return self.status

    async def receive_some(self) -> bytes:
        """The next piece of the response body; ``b""`` once the server ended the stream."""
        try:
            data, flow_controlled = await self._receive.receive()
        except trio.EndOfChannel:
            if self.ended:
                return b""
            raise H2StreamError(f"stream {self.stream_id} reset ({self.reset_code}) or connection lost") from None
        # Only now does the server get the window back: reading is what lets it send more.
        self.client.conn.acknowledge_received_data(flow_controlled, self.stream_id)
        await self.client.flush()
        return data

    async def read_all(self) -> bytes:
        body = bytearray()
        while data := await self.receive_some():
            body += data
        return bytes(body)

    async def send(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send request body bytes, waiting for flow-control window as needed."""
        conn = self.client.conn
        while data:
            if self.client.lost:
                raise H2StreamError(f"connection lost while sending on stream {self.stream_id}")
            window = min(conn.local_flow_control_window(self.stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                await self.client.window_changed().wait()
                continue
            conn.send_data(self.stream_id, data[:window])
            data = data[window:]
            await self.client.flush()
        if end_stream:
            conn.end_stream(self.stream_id)
            await self.client.flush()

    async def reset(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Cancel this stream only (RST_STREAM); the connection stays open."""
        self.client.conn.reset_stream(self.stream_id, code)
        await self.client.flush()
        self._send.close()
        # What was received but never read still counts against the connection window: give it back.
        while True:
            try:
                _, flow_controlled = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self.client.conn.acknowledge_received_data(flow_controlled, self.stream_id)
        await self.client.flush()


class H2Client:
    """An HTTP/2 client connection; open it with :func:`open_h2`."""

    def __init__(self, stream: trio.abc.Stream, authority: str, scheme: str) -> None:
        self.stream = stream
        self.authority = authority
        self.scheme = scheme
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams: dict[int, H2Stream] = {}
        #: Set once the server's first SETTINGS frame has arrived.
        self.settings_received = trio.Event()
        self.lost = False
        self._send_lock = trio.Lock()
        self._window_changed = trio.Event()

    def window_changed(self) -> trio.Event:
        return self._window_changed

    async def flush(self) -> None:
        async with self._send_lock:
            data = self.conn.data_to_send()
            if data and not self.lost:
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._connection_lost()

    async def request(
        self, headers: list[tuple[str, str]], body: bytes | None = None, *, end_stream: bool = True
    ) -> H2Stream:
        """Open a stream: send ``headers`` (pseudo-headers first), then ``body``."""
        stream_id = self.conn.get_next_available_stream_id()
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        self.conn.send_headers(stream_id, headers, end_stream=end_stream and not body)
        await self.flush()
        if body:
            await stream.send(body, end_stream=end_stream)
        return stream

    async def get(self, path: str) -> H2Stream:
        return await self.request(self._pseudo("GET", path))

    async def post_json(self, path: str, payload: dict[str, Any]) -> H2Stream:
        body = json.dumps(payload).encode()
        headers = [
            *self._pseudo("POST", path),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        return await self.request(headers, body)

    def _pseudo(self, method: str, path: str) -> list[tuple[str, str]]:
        return [(":method", method), (":scheme", self.scheme), (":path", path), (":authority", self.authority)]

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._connection_lost()
                return
            for event in self.conn.receive_data(data):
                self._handle(event)
            await self.flush()  # SETTINGS and PING acknowledgements, RST_STREAM answers

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received.set()
            self._wake_senders()
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake_senders()
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams[event.stream_id]
            headers = {_text(name): _text(value) for name, value in event.headers or []}
            stream.status = int(headers.pop(":status"))
            stream.headers = headers
            stream.response.set()
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams[event.stream_id]
            try:
                stream._send.send_nowait((bytes(event.data or b""), event.flow_controlled_length or 0))
            except trio.ClosedResourceError:
                # The test reset this stream; the data still counts against the connection window.
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams[event.stream_id]
            stream.ended = True
            stream._send.close()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams[event.stream_id]
            stream.reset_code = event.error_code
            stream.response.set()
            stream._send.close()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._connection_lost()

    def _wake_senders(self) -> None:
        self._window_changed.set()
        self._window_changed = trio.Event()

    def _connection_lost(self) -> None:
        self.lost = True
        for stream in self.streams.values():
            stream.response.set()
            stream._send.close()
        self._wake_senders()


@asynccontextmanager
async def open_h2(stream: trio.abc.Stream, authority: str, *, scheme: str = "http") -> AsyncIterator[H2Client]:
    """Speak HTTP/2 on ``stream`` (prior knowledge, or after ALPN chose h2); close the connection on exit."""
    client = H2Client(stream, authority, scheme)
    client.conn.initiate_connection()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._read_loop)
            try:
                await client.flush()
                await client.settings_received.wait()
                yield client
            finally:
                # Only the reader is cancelled here; an error from the block passes through untouched.
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()  # closes the socket even when cancelled (Trio's aclose contract)


class WebSocketClosed(Exception):
    """The server closed the WebSocket (close frame) or its stream."""


class H2WebSocket:
    """A WebSocket carried by one HTTP/2 stream (RFC 8441): WebSocket frames in DATA, no upgrade handshake."""

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream
        self.ws = Connection(ConnectionType.CLIENT)
        self._parts: list[str | bytes] = []

    async def send(self, message: str | bytes) -> None:
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        await self.stream.send(self.ws.send(event))

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(json.dumps(payload))

    async def get_message(self) -> str | bytes:
        """The next complete message (text as ``str``, binary as ``bytes``)."""
        while True:
            for event in self.ws.events():
                if isinstance(event, Message):
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts = self._parts, []
                        if isinstance(event, TextMessage):
                            return "".join(part for part in parts if isinstance(part, str))
                        return b"".join(part for part in parts if isinstance(part, bytes))
                elif isinstance(event, Ping):
                    await self.stream.send(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise WebSocketClosed(f"closed by the server: {event.code} {event.reason}")
            data = await self.stream.receive_some()
            if not data:
                raise WebSocketClosed("the server ended the stream")
            self.ws.receive_data(data)

    async def get_json(self) -> Any:
        message = await self.get_message()
        assert isinstance(message, str), f"expected a text message, got {len(message)} binary bytes"
        return json.loads(message)

    async def close(self) -> None:
        """Close cleanly: a close frame, then the end of our half of the stream."""
        await self.stream.send(self.ws.send(CloseConnection(code=1000)), end_stream=True)


async def open_websocket(client: H2Client, path: str) -> H2WebSocket:
    """Open a WebSocket with extended CONNECT on ``client``'s connection."""
    if client.conn.remote_settings.enable_connect_protocol != 1:
        raise AssertionError("the server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL")
    headers = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", client.scheme),
        (":path", path),
        (":authority", client.authority),
        ("sec-websocket-version", "13"),
    ]
    stream = await client.request(headers, end_stream=False)
    status = await stream.wait_response()
    if status != 200:
        raise AssertionError(f"extended CONNECT answered {status}, not 200")
    return H2WebSocket(stream)
