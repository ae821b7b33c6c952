"""Audio formats and the WAV container.

The engine's true sample rate, sample width and channel count travel with the
audio as an :class:`AudioFormat`, so every protocol can describe exactly what
it sends. WAV is written with the standard library's :mod:`wave` for complete
files; a streamed WAV whose length is unknown when the header leaves uses the
open-ended size convention (``0xFFFFFFFF``) that ffmpeg, sox and browsers read.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator

import attrs

_OPEN_ENDED = 0xFFFFFFFF


@attrs.frozen
class AudioFormat:
    """Describes PCM audio: integer samples, little-endian, interleaved channels."""

    sample_rate: int
    sample_width: int = 2
    channels: int = 1

    @property
    def frame_size(self) -> int:
        return self.sample_width * self.channels

    @property
    def encoding(self) -> str:
        return f"pcm_s{self.sample_width * 8}le"

    def describe(self, output_format: str) -> dict[str, object]:
        """The format as clients see it (SSE ``format`` event, WebSocket ``start``)."""
        return {
            "container": output_format,
            "encoding": self.encoding,
            "sample_rate": self.sample_rate,
            "sample_width": self.sample_width,
            "channels": self.channels,
        }


def wav_file(fmt: AudioFormat, pcm: bytes) -> bytes:
    """A complete WAV file with exact sizes in its header."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(fmt.channels)
        writer.setsampwidth(fmt.sample_width)
        writer.setframerate(fmt.sample_rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def streaming_wav_header(fmt: AudioFormat, format_tag: int = 1) -> bytes:
    """A 44-byte WAV header for a stream whose length is not known yet.

    ``format_tag`` is 1 for integer PCM; the dialects also send 3 (float)
    and 6/7 (A-law/mu-law, with ``fmt`` describing those samples).
    """
    byte_rate = fmt.sample_rate * fmt.frame_size
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _OPEN_ENDED),
            b"WAVE",
            b"fmt ",
            struct.pack(
                "<IHHIIHH",
                16,
                format_tag,
                fmt.channels,
                fmt.sample_rate,
                byte_rate,
                fmt.frame_size,
                fmt.sample_width * 8,
            ),
            b"data",
            struct.pack("<I", _OPEN_ENDED),
        )
    )


def split_chunks(data: bytes, chunk_size: int) -> Iterator[bytes]:
    """Split ``data`` into pieces of at most ``chunk_size`` bytes."""
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


def frame_aligned(chunk_size: int, fmt: AudioFormat) -> int:
    """The largest multiple of the frame size not above ``chunk_size`` (at least one frame)."""
    return max(fmt.frame_size, chunk_size - chunk_size % fmt.frame_size)


@attrs.frozen
class AudioChunk:
    """PCM produced by the engine for one sentence (a sentence may give several)."""

    pcm: bytes
    sentence: int


@attrs.frozen
class WordTiming:
    """When a word is spoken, in seconds (from its sentence's start, or the stream's)."""

    word: str
    start: float
    end: float

    def shifted(self, offset: float) -> WordTiming:
        return WordTiming(self.word, round(self.start + offset, 4), round(self.end + offset, 4))

    def to_dict(self) -> dict[str, object]:
        return {"word": self.word, "start": self.start, "end": self.end}
