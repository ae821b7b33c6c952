"""What a generation's and a context's stream look like on the socket (the relay's writers).

A generation sends binary audio messages (with ``wav`` each one a complete
small WAV file, so a browser can decode every message alone) and JSON for
the rest; a context sends everything as JSON, its audio base64 with the
context id, so several contexts on one socket cannot be confused. Pure
framing: no socket, no state beyond the ids.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import attrs

from tts_trio.api.websocket.protocol import Generation
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioFormat, frame_aligned, wav_file
from tts_trio.synthesis.captions import SentenceCaptions
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics

#: A context's audio messages carry at most this much decoded audio.
CONTEXT_CHUNK_BYTES = 65536
_WAV_HEADER_BYTES = 44


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _timed(timings: SentenceTimings, captioner: SentenceCaptions | None) -> dict[str, Any]:
    """A sentence's timings, with its ``captions`` when the stream asked for them."""
    body = timings.to_dict()
    if captioner is not None:
        body["captions"] = captioner.for_sentence(timings)
    return body


@attrs.frozen
class GenerationWriter:
    """A generation's messages: binary audio (a whole WAV file each for ``wav``), JSON for the rest."""

    request_id: str
    fmt: AudioFormat
    choice: EncodingChoice
    chunk_size: int | None
    message_overhead: int
    #: With ``captions`` (``srt``/``vtt``): the stream's caption numbering (one per stream).
    captioner: SentenceCaptions | None = None

    @classmethod
    def for_generation(cls, generation: Generation) -> GenerationWriter:
        fmt = generation.job.pool.audio_format
        chunk_size = generation.params.chunk_size
        kind = generation.params.captions
        captioner = SentenceCaptions(kind) if kind is not None else None
        if generation.choice.output_format != "wav":
            return cls(generation.request_id, fmt, generation.choice, chunk_size, 0, captioner)
        target = attrs.evolve(fmt, sample_rate=generation.choice.sample_rate)
        room = None if chunk_size is None else frame_aligned(chunk_size - _WAV_HEADER_BYTES, target)
        return cls(generation.request_id, target, generation.choice, room, _WAV_HEADER_BYTES, captioner)

    @staticmethod
    def source_choice(choice: EncodingChoice) -> EncodingChoice:
        """What the encoder makes: PCM at the chosen rate for per-message WAV files."""
        return EncodingChoice("pcm", choice.sample_rate) if choice.output_format == "wav" else choice

    def start(self, source: AudioFormat) -> str:
        return _json({"type": "start", "request_id": self.request_id, "format": self.choice.describe(source)})

    def audio(self, piece: bytes, index: int) -> bytes:
        return wav_file(self.fmt, piece) if self.message_overhead else piece

    def timings(self, timings: SentenceTimings) -> str:
        return _json({"type": "timings", "request_id": self.request_id, **_timed(timings, self.captioner)})

    def error(self, error: StreamError) -> str:
        return _json({"type": "error", "request_id": self.request_id, "code": error.code, "message": error.message})

    def finished(self, metrics: StreamMetrics) -> Sequence[str]:
        return (
            _json({"type": "metrics", "request_id": self.request_id, "data": metrics.to_dict()}),
            _json({"type": "done", "request_id": self.request_id}),
        )


@attrs.frozen
class ContextWriter:
    """A context's messages: all JSON, audio as base64 with the context id, so contexts never mix."""

    context_id: str
    chunk_size: int = CONTEXT_CHUNK_BYTES
    message_overhead: int = 0
    captioner: SentenceCaptions | None = None

    def start(self, choice: EncodingChoice, source: AudioFormat) -> str:
        return _json({"type": "start", "context_id": self.context_id, "format": choice.describe(source)})

    def audio(self, piece: bytes, index: int) -> str:
        chunk = base64.b64encode(piece).decode()
        return _json({"type": "audio", "context_id": self.context_id, "chunk": chunk, "index": index})

    def timings(self, timings: SentenceTimings) -> str:
        return _json({"type": "timings", "context_id": self.context_id, **_timed(timings, self.captioner)})

    def error(self, error: StreamError) -> str:
        return _json({"type": "error", "context_id": self.context_id, "code": error.code, "message": error.message})

    def finished(self, metrics: StreamMetrics) -> Sequence[str]:
        return (
            _json({"type": "metrics", "context_id": self.context_id, "data": metrics.to_dict()}),
            _json({"type": "done", "context_id": self.context_id}),
        )
