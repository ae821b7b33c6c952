"""Reference audio for voice cloning: decode any upload, check it, normalize it.

Uploads are decoded by FFmpeg (through PyAV), so wav, mp3, flac, ogg/opus,
m4a and the rest are accepted, and anything that is not audio is refused
whatever its file name says. The result is mono 16-bit PCM at
:data:`~tts_trio.voices.store.REFERENCE_RATE`, the rate cloning engines work at,
in a WAV file. Decoding stops as soon as the audio is longer than allowed,
so a small compressed file cannot expand into gigabytes.
"""

from __future__ import annotations

import io

import attrs

from tts_trio.audio.formats import AudioFormat, wav_file
from tts_trio.errors import ApiError, AudioDuration, InvalidAudio
from tts_trio.voices.store import REFERENCE_RATE


@attrs.frozen
class ReferenceAudio:
    wav: bytes
    duration: float
    source_format: str


def normalize_reference(data: bytes, *, min_seconds: float, max_seconds: float) -> ReferenceAudio:
    """Decode ``data`` and return it as a mono WAV at the reference rate (blocking: run in a thread)."""
    import av

    limit = int((max_seconds + 0.5) * REFERENCE_RATE)
    pieces: list[bytes] = []
    samples = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudio("the file has no audio stream")
            stream = container.streams.audio[0]
            source_format = f"{container.format.name}/{stream.codec_context.name}"
            resampler = av.AudioResampler(format="s16", layout="mono", rate=REFERENCE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(bytes(out.to_ndarray().tobytes()))
                    samples += out.samples
                if samples > limit:
                    break
            else:
                for out in resampler.resample(None):
                    pieces.append(bytes(out.to_ndarray().tobytes()))
                    samples += out.samples
    except ApiError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise InvalidAudio(f"the upload is not audio that can be decoded ({type(error).__name__})") from None
    duration = samples / REFERENCE_RATE
    if samples == 0:
        raise InvalidAudio("the upload contains no audio samples")
    if duration > max_seconds:
        raise AudioDuration(f"the audio is longer than {max_seconds:g} s; trim it to {max_seconds:g} s or less")
    if duration < min_seconds:
        raise AudioDuration(f"the audio is {duration:.1f} s; cloning needs at least {min_seconds:g} s")
    pcm = b"".join(pieces)
    return ReferenceAudio(wav_file(AudioFormat(sample_rate=REFERENCE_RATE), pcm), duration, source_format)
