"""Turn what an engine produces into 16-bit PCM, the one format the pipeline carries.

RealtimeTTS engines report their output as PyAudio formats: most give 16-bit
PCM, some 32-bit float, and some (ElevenLabs, Edge) MP3 with no fixed rate.
The pool feeds every chunk through a converter made here, per sentence, so
everything after the engine sees one :class:`~tts_trio.audio.formats.AudioFormat`.
"""

from __future__ import annotations

from typing import Any, Protocol

from tts_trio.audio.formats import AudioFormat

PA_FLOAT32 = 1
PA_INT16 = 8
PA_CUSTOM = 0x00010000
#: Rate MP3-producing engines are decoded to.
MP3_RATE = 24000


class Converter(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class Passthrough:
    def feed(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Float32ToInt16:
    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        import numpy as np

        data = self._rest + data
        usable = len(data) - len(data) % 4
        self._rest = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=np.float32)
        return bytes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())

    def flush(self) -> bytes:
        self._rest = b""
        return b""


class _Mp3ToInt16:
    """Streaming MP3 decode (FFmpeg through PyAV), resampled to mono :data:`MP3_RATE`."""

    def __init__(self) -> None:
        import av

        self._codec: Any = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=MP3_RATE)

    def _frames(self, packets: Any) -> bytes:
        out = []
        for packet in packets:
            for frame in self._codec.decode(packet):
                for resampled in self._resampler.resample(frame):
                    out.append(resampled.to_ndarray().tobytes())
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        return self._frames(self._codec.parse(data))

    def flush(self) -> bytes:
        return self._frames(self._codec.parse(b"")) + self._frames([None])


def output_format(stream_info: tuple[int, int, int]) -> tuple[AudioFormat, type[Converter]]:
    """The PCM format the pipeline will carry for an engine, and the converter to get there."""
    pa_format, channels, rate = stream_info
    channels = max(1, int(channels))
    if pa_format == PA_FLOAT32:
        return AudioFormat(sample_rate=int(rate), channels=channels), _Float32ToInt16
    if pa_format == PA_CUSTOM or int(rate) <= 0:
        return AudioFormat(sample_rate=MP3_RATE, channels=1), _Mp3ToInt16
    return AudioFormat(sample_rate=int(rate), channels=channels), Passthrough
