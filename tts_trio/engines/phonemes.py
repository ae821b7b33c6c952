"""Phonemes inside a text: how the lexicon and SSML hand IPA to an engine that can speak it.

A lexicon entry ``{"phonemes": "tʃɪkən"}`` and SSML's ``<phoneme ph="...">``
put IPA into the text the engine gets, as a *marked span*:
``MARK_OPEN + ipa + MARK_SPLIT + written + MARK_CLOSE``. The three marks are
Unicode private-use characters that no client text can carry (request text
loses them in :func:`~tts_trio.synthesis.params.clean_text`), so a client
can never smuggle phonemes, or an engine's own phoneme syntax (Piper's and
espeak-ng's ``[[...]]``), past the server: only the server marks spans.

An engine that takes IPA (``LoadedEngine.takes_phonemes``: Piper, whose
model input *is* IPA) turns each span into its own phoneme input
(:func:`parts`); for any other engine the service speaks each span's
written text instead (:func:`written` does that to a whole text) and says so
in a warning.
"""

from __future__ import annotations

import re

import attrs

MARK_OPEN = "\ue000"
MARK_SPLIT = "\ue001"
MARK_CLOSE = "\ue002"
MARKS = MARK_OPEN + MARK_SPLIT + MARK_CLOSE

_SPAN = re.compile(f"{MARK_OPEN}([^{MARKS}]*){MARK_SPLIT}([^{MARKS}]*){MARK_CLOSE}")
_UNMARK = str.maketrans(dict.fromkeys(MARKS, " "))


def mark(ipa: str, written: str = "") -> str:
    """A marked span: speak ``ipa``; ``written`` is what an engine without IPA says instead."""
    return f"{MARK_OPEN}{ipa.translate(_UNMARK).strip()}{MARK_SPLIT}{written.translate(_UNMARK)}{MARK_CLOSE}"


def unmarked(text: str) -> str:
    """``text`` with any mark character a client sent turned into a space (nothing of it is a span)."""
    return text.translate(_UNMARK)


def has_spans(text: str) -> bool:
    return MARK_OPEN in text


@attrs.frozen
class Piece:
    """A run of plain ``text`` (``ipa`` None), or one marked span: its ``ipa`` and its ``written`` text."""

    text: str = ""
    ipa: str | None = None
    written: str = ""


def pieces(text: str) -> list[Piece]:
    """``text`` cut into plain runs and spans, in order; stray marks in the plain runs become spaces."""
    found: list[Piece] = []
    position = 0
    for span in _SPAN.finditer(text):
        if span.start() > position:
            found.append(Piece(unmarked(text[position : span.start()])))
        found.append(Piece(ipa=span.group(1), written=span.group(2)))
        position = span.end()
    if position < len(text):
        found.append(Piece(unmarked(text[position:])))
    return found


def parts(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(text, False)`` and ``(ipa, True)`` parts, in order (see :func:`pieces`)."""
    return [(piece.ipa, True) if piece.ipa is not None else (piece.text, False) for piece in pieces(text)]


def without_brackets(text: str) -> str:
    """``text`` with its square brackets as parentheses: next to phoneme input, none may open ``[[``.

    Breaking up ``[[`` is not enough: espeak-ng skips a soft hyphen or a
    zero-width non-joiner between two brackets.
    """
    return text.translate(_BRACKETS)


_BRACKETS = str.maketrans("[]", "()")


def written(text: str) -> str:
    """``text`` with each span replaced by its written text (for an engine that takes no IPA)."""
    return unmarked(_SPAN.sub(lambda span: span.group(2), text))


def as_ipa(text: str) -> str:
    """``text`` with each span replaced by its IPA: what the words of the text are once spoken."""
    return unmarked(_SPAN.sub(lambda span: span.group(1), text))
