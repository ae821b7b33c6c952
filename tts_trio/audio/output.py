"""The consumer side shared by every protocol: encode a stream's PCM for the client.

Each request owns one :class:`EncodedOutput`. WAV and PCM at the engine's
own rate are copied on the event loop; anything that runs a codec or a
resampler runs in a worker thread so other streams are not held up.
"""

from __future__ import annotations

import trio

from tts_trio.audio.encoding import EncodingChoice, is_cheap, open_encoder
from tts_trio.audio.formats import AudioFormat


class EncodedOutput:
    """One continuous encoded stream for one request."""

    def __init__(self, source: AudioFormat, choice: EncodingChoice) -> None:
        self.source = source
        self.choice = choice
        self._encoder = open_encoder(source, choice)
        self._cheap = is_cheap(choice, source)

    async def encode(self, pcm: bytes) -> bytes:
        if self._cheap:
            return self._encoder.encode(pcm)
        return await trio.to_thread.run_sync(self._encoder.encode, pcm)

    async def finish(self) -> bytes:
        if self._cheap:
            return self._encoder.finish()
        return await trio.to_thread.run_sync(self._encoder.finish)
