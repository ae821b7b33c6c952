"""Decode what the server sent with FFmpeg (PyAV), to check it is what it claims to be."""

from __future__ import annotations

import io

import attrs
import av


@attrs.frozen
class Decoded:
    codec: str
    sample_rate: int
    channels: int
    seconds: float


def decode(data: bytes) -> Decoded:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        context = stream.codec_context
        return Decoded(context.name, context.sample_rate, context.channels, samples / context.sample_rate)


CODECS = {"mp3": "mp3float", "opus": "opus", "aac": "aac", "flac": "flac", "wav": "pcm_s16le"}
