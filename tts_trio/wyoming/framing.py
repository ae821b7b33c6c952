"""Wyoming events on a byte stream: one JSON header line, then data bytes, then payload bytes.

The wire format is that of ``wyoming.event`` (``async_read_event`` /
``async_write_event``): a header ``{"type", "data"?, "data_length"?,
"payload_length"?, "version"?}`` ending in a newline, then ``data_length``
bytes of JSON merged into ``data``, then ``payload_length`` bytes of
payload. The reference reader buffers whatever lengths a client claims;
this one refuses a header line, data or payload over :class:`FrameLimits`
before reading it, so a hostile client cannot make the server buffer
unbounded data.

A malformed event whose bytes were all consumed (bad JSON, a header that is
not an object) leaves the framing intact: :class:`MalformedEvent` says so
with ``fatal=False`` and the connection can go on. One whose lengths cannot
be trusted (too long, not integers) leaves no way to find the next event:
``fatal=True``, and the connection is closed after the error event.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio
from wyoming.event import Event
from wyoming.version import __version__ as WYOMING_VERSION

#: Longest event type accepted (the protocol's are a few words).
MAX_TYPE_CHARS = 64
_READ_SIZE = 65536


@attrs.frozen
class FrameLimits:
    """The most a client may send in one event; each part is refused before it is buffered."""

    max_line_bytes: int
    max_data_bytes: int
    max_payload_bytes: int

    @classmethod
    def for_text(cls, max_text_chars: int) -> FrameLimits:
        """Room for the longest text the server accepts, JSON-escaped (``\\uXXXX`` is 6 bytes a character)."""
        room = 6 * max_text_chars + 8192
        # A TTS server reads no audio: a payload is skipped, and never needs to be large.
        return cls(max_line_bytes=room, max_data_bytes=room, max_payload_bytes=1 << 20)


class MalformedEvent(Exception):
    """An event that could not be read; ``fatal`` when the stream's framing is lost with it."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal


class EventReader:
    """Reads events from a trio stream, one at a time, within :class:`FrameLimits`."""

    def __init__(self, stream: trio.abc.ReceiveStream, limits: FrameLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        """Read more bytes; False at the end of the stream (or a broken connection)."""
        if self._eof:
            return False
        try:
            data = await self._stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    async def _line(self) -> bytes | None:
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                if end > self._limits.max_line_bytes:
                    raise MalformedEvent(f"event header longer than {self._limits.max_line_bytes} bytes", fatal=True)
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self._limits.max_line_bytes:
                raise MalformedEvent(f"event header longer than {self._limits.max_line_bytes} bytes", fatal=True)
            searched = len(self._buffer)
            if not await self._fill():
                return None

    async def _exactly(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def receive(self) -> Event | None:
        """The next event; None when the client has gone (also in the middle of an event).

        Raises :class:`MalformedEvent` for an event that breaks the format or a limit.
        """
        while True:
            line = await self._line()
            if line is None:
                return None
            if line.strip():
                break  # blank lines between events are harmless
        header = _loads(line, "event header")
        if not isinstance(header, dict):
            raise MalformedEvent("the event header must be a JSON object", fatal=False)
        data_length = _length(header, "data_length", self._limits.max_data_bytes)
        payload_length = _length(header, "payload_length", self._limits.max_payload_bytes)
        data_bytes = await self._exactly(data_length) if data_length else b""
        payload = await self._exactly(payload_length) if payload_length else b""
        if data_bytes is None or payload is None:
            return None
        event_type = header.get("type")
        if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_CHARS:
            raise MalformedEvent(f"the event needs a type: a string of 1 to {MAX_TYPE_CHARS} characters", fatal=False)
        data = header.get("data") or {}
        if not isinstance(data, dict):
            raise MalformedEvent("event data must be a JSON object", fatal=False)
        if data_bytes:
            extra = _loads(data_bytes, "event data")
            if not isinstance(extra, dict):
                raise MalformedEvent("event data must be a JSON object", fatal=False)
            data = {**data, **extra}
        return Event(type=event_type, data=data, payload=payload or None)


def _loads(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise MalformedEvent(f"{what} is not valid JSON", fatal=False) from None


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"{key} must be a non-negative integer", fatal=True)
    if value > limit:
        raise MalformedEvent(f"{key} {value} is over the limit of {limit} bytes", fatal=True)
    return value


def encode_event(event: Event) -> bytes:
    """The bytes of ``event`` as ``wyoming.event.async_write_event`` writes them."""
    header: dict[str, Any] = {"type": event.type, "version": WYOMING_VERSION}
    data_bytes = b""
    if event.data:
        data_bytes = json.dumps(event.data, ensure_ascii=False).encode("utf-8")
        header["data_length"] = len(data_bytes)
    if event.payload:
        header["payload_length"] = len(event.payload)
    line = json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n"
    return line + data_bytes + (event.payload or b"")
