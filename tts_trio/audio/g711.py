"""G.711 mu-law and A-law, the 8-bit telephone encodings the vendor dialects offer (``ulaw_8000``, ``mulaw``).

The conversion is the standard library's ``audioop`` (Sun's reference
rounding, the one SoX and the telephony stacks use), in C; from Python 3.13
on it is the ``audioop-lts`` package under the same name. It is stateless
per sample, so every piece of a stream converts on its own.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # Deprecated in 3.11/3.12 (removed in 3.13, where audioop-lts provides it); the warning is not ours to act on.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

#: WAV format tags of the encodings (``WAVE_FORMAT_MULAW``, ``WAVE_FORMAT_ALAW``).
MULAW_TAG = 7
ALAW_TAG = 6


def to_mulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM as mu-law bytes, one per sample (a trailing odd byte is dropped)."""
    return audioop.lin2ulaw(pcm[: len(pcm) // 2 * 2], 2)


def to_alaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM as A-law bytes, one per sample (a trailing odd byte is dropped)."""
    return audioop.lin2alaw(pcm[: len(pcm) // 2 * 2], 2)
