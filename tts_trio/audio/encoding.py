"""Output formats: incremental encoders from engine PCM to what the client asked for.

Every request gets one encoder that turns the engine's PCM into one
continuous stream: the container header leaves with the first audio, later
chunks carry only audio, and :meth:`Encoder.finish` adds what the format
needs at the end. Resampling (the ``sample_rate`` option, and Opus's fixed
rates) uses python-soxr's streaming resampler, which keeps its filter state
across chunks so seams between sentences do not click. Compressed formats
are encoded by FFmpeg through PyAV (its wheels ship the encoders), imported
only when such a format is asked for so the idle server stays small.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from tts_trio.audio.formats import AudioFormat, streaming_wav_header, wav_file
from tts_trio.errors import InvalidParameter

#: Formats every route accepts (``response_format`` on the OpenAI route).
FORMATS = ("wav", "pcm", "mp3", "opus", "flac", "aac")

CONTENT_TYPES = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",  # little-endian, as OpenAI's; audio/L16 is big-endian by definition
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}

_LOSSY_RATES = {
    "mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    "opus": (8000, 12000, 16000, 24000, 48000),
    "aac": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
}
MIN_RATE = 8000
MAX_RATE = 48000


@attrs.frozen
class EncodingChoice:
    """A validated output format and the rate it will have."""

    output_format: str
    sample_rate: int

    @property
    def content_type(self) -> str:
        """The media type; raw PCM's carries its rate, the one thing a client cannot read from the bytes.

        OpenAI sends ``audio/pcm;rate=24000;channels=1``, and clients built for
        it (LiveKit's plugin) take ``audio/pcm`` as raw s16le; stating the
        actual rate keeps a ``sample_rate`` other than 24 kHz from being
        played at the wrong speed. Engines give mono (the codec encoders take nothing else).
        """
        if self.output_format == "pcm":
            return f"audio/pcm;rate={self.sample_rate};channels=1"
        return CONTENT_TYPES[self.output_format]

    def describe(self, source: AudioFormat) -> dict[str, object]:
        """How a client decodes the stream (SSE ``format`` event, WebSocket ``start``)."""
        encoding = source.encoding if self.output_format in ("wav", "pcm") else self.output_format
        return {
            "container": self.output_format,
            "encoding": encoding,
            "sample_rate": self.sample_rate,
            "sample_width": source.sample_width,
            "channels": source.channels,
        }

    def headers(self, source: AudioFormat) -> dict[str, str]:
        described = self.describe(source)
        return {
            "X-Audio-Format": self.output_format,
            "X-Audio-Encoding": str(described["encoding"]),
            "X-Audio-Sample-Rate": str(self.sample_rate),
            "X-Audio-Sample-Width": str(source.sample_width),
            "X-Audio-Channels": str(source.channels),
        }


def choose_encoding(output_format: str, sample_rate: int | None, source: AudioFormat) -> EncodingChoice:
    """Validate a format and rate; raise :class:`InvalidParameter` naming the problem."""
    if output_format not in FORMATS:
        raise InvalidParameter(f"output_format: must be one of {', '.join(FORMATS)}", field="output_format")
    if sample_rate is not None and not MIN_RATE <= sample_rate <= MAX_RATE:
        raise InvalidParameter(f"sample_rate: must be between {MIN_RATE} and {MAX_RATE}", field="sample_rate")
    allowed = _LOSSY_RATES.get(output_format)
    if sample_rate is None:
        rate = source.sample_rate
        if allowed is not None and rate not in allowed:
            rate = 48000
    else:
        rate = sample_rate
        if allowed is not None and rate not in allowed:
            rates = ", ".join(str(value) for value in allowed)
            raise InvalidParameter(f"sample_rate: {output_format} supports {rates}", field="sample_rate")
    return EncodingChoice(output_format, rate)


class Encoder(Protocol):
    """Turns PCM chunks into one continuous stream in the chosen format."""

    def encode(self, pcm: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Resampler:
    """Streaming s16 resampling with python-soxr (state kept across chunks)."""

    def __init__(self, source_rate: int, target_rate: int, channels: int) -> None:
        import numpy as np
        import soxr

        self._np = np
        self._stream = soxr.ResampleStream(source_rate, target_rate, channels, dtype="int16", quality="HQ")

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        samples = self._np.frombuffer(pcm, dtype=self._np.int16)
        return bytes(self._stream.resample_chunk(samples, last=last).tobytes())


class _PcmEncoder:
    """Bare PCM (optionally resampled), with an open-ended WAV header first if asked."""

    def __init__(self, source: AudioFormat, choice: EncodingChoice, *, wav_header: bool) -> None:
        self._resampler = (
            _Resampler(source.sample_rate, choice.sample_rate, source.channels)
            if choice.sample_rate != source.sample_rate
            else None
        )
        target = attrs.evolve(source, sample_rate=choice.sample_rate)
        self._pending_header = streaming_wav_header(target) if wav_header else b""

    def encode(self, pcm: bytes) -> bytes:
        data = self._resampler.process(pcm) if self._resampler else pcm
        if self._pending_header:
            data, self._pending_header = self._pending_header + data, b""
        return data

    def finish(self) -> bytes:
        tail = self._resampler.process(b"", last=True) if self._resampler else b""
        if self._pending_header:
            tail, self._pending_header = self._pending_header + tail, b""
        return tail


class _Collector:
    """A write-only file for PyAV's muxer: it cannot seek, so output is a pure stream."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


_AV_CODECS = {
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "flac": ("flac", "flac"),
    "aac": ("adts", "aac"),
}


class _AvEncoder:
    """mp3 / Ogg Opus / FLAC / AAC (ADTS) through PyAV, fed s16 mono frames."""

    def __init__(self, source: AudioFormat, choice: EncodingChoice) -> None:
        import av
        import numpy as np

        self._av = av
        self._np = np
        self._rate = choice.sample_rate
        self._resampler = (
            _Resampler(source.sample_rate, choice.sample_rate, source.channels)
            if choice.sample_rate != source.sample_rate
            else None
        )
        container_format, codec = _AV_CODECS[choice.output_format]
        self._out = _Collector()
        # Ogg pages are flushed every 100 ms of audio so Opus streams start promptly.
        options = {"page_duration": "100000"} if container_format == "ogg" else {}
        self._container = av.open(self._out, mode="w", format=container_format, options=options)
        stream = self._container.add_stream(codec, rate=self._rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        self._stream = stream
        self._stream.codec_context.layout = "mono"
        self._pts = 0
        self._closed = False

    def _encode_samples(self, pcm: bytes) -> None:
        samples = self._np.frombuffer(pcm, dtype=self._np.int16).reshape(1, -1)
        if samples.shape[1] == 0:
            return
        frame = self._av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def encode(self, pcm: bytes) -> bytes:
        self._encode_samples(self._resampler.process(pcm) if self._resampler else pcm)
        return self._out.take()

    def finish(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._resampler:
            self._encode_samples(self._resampler.process(b"", last=True))
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._out.take()


def open_encoder(source: AudioFormat, choice: EncodingChoice) -> Encoder:
    """A streaming encoder: for ``wav`` the header is open-ended (the length is not known yet)."""
    if choice.output_format in ("wav", "pcm"):
        return _PcmEncoder(source, choice, wav_header=choice.output_format == "wav")
    return _AvEncoder(source, choice)


def is_cheap(choice: EncodingChoice, source: AudioFormat) -> bool:
    """Whether encoding is cheap enough to run on the event loop (no codec, no resampling)."""
    return choice.output_format in ("wav", "pcm") and choice.sample_rate == source.sample_rate


def encode_complete(source: AudioFormat, choice: EncodingChoice, pcm: bytes) -> bytes:
    """A whole file; WAV gets exact sizes in its header."""
    if choice.output_format == "wav":
        resampled = open_encoder(source, EncodingChoice("pcm", choice.sample_rate))
        data = resampled.encode(pcm) + resampled.finish()
        return wav_file(attrs.evolve(source, sample_rate=choice.sample_rate), data)
    encoder = open_encoder(source, choice)
    return encoder.encode(pcm) + encoder.finish()
