"""G.711: the values the standard fixes, and that decoding gives the signal back within the law's step."""

from __future__ import annotations

import numpy as np

from tts_trio.audio.g711 import to_alaw, to_mulaw

SAMPLES = np.array([0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32767, -32768], dtype="<i2")


def _mulaw_decode(byte: int) -> int:
    """The G.711 mu-law expansion, written from the standard's formula."""
    value = ~byte & 0xFF
    magnitude = (((value & 0x0F) << 3) + 0x84) << ((value >> 4) & 0x07)
    return -(magnitude - 0x84) if value & 0x80 else magnitude - 0x84


def _alaw_decode(byte: int) -> int:
    value = byte ^ 0x55
    segment = (value >> 4) & 0x07
    magnitude = ((value & 0x0F) << 4) + 8
    if segment:
        magnitude = (magnitude + 0x100) << (segment - 1)
    return magnitude if value & 0x80 else -magnitude


def test_silence_and_the_extremes_have_the_standards_codes() -> None:
    assert to_mulaw(np.array([0, 32767, -32768], dtype="<i2").tobytes()) == bytes([0xFF, 0x80, 0x00])
    assert to_alaw(np.array([0, 32767, -32768], dtype="<i2").tobytes()) == bytes([0xD5, 0xAA, 0x2A])


def test_decoding_gives_each_sample_back_within_its_quantisation_step() -> None:
    for encode, decode in ((to_mulaw, _mulaw_decode), (to_alaw, _alaw_decode)):
        decoded = np.array([decode(byte) for byte in encode(SAMPLES.tobytes())])
        tolerance = np.maximum(np.abs(SAMPLES.astype(np.int32)) // 16, 16)
        assert np.all(np.abs(decoded - SAMPLES) <= tolerance), (encode.__name__, decoded)


def test_one_byte_per_sample_and_an_odd_trailing_byte_is_dropped() -> None:
    pcm = SAMPLES.tobytes() + b"\x01"
    assert len(to_mulaw(pcm)) == len(to_alaw(pcm)) == len(SAMPLES)
