"""What an engine is given to say: an SSML document as a script, the lexicon applied, phonemes kept or not.

:meth:`tts_trio.synthesis.service.TtsService.job` builds every job's text
with these. IPA from the lexicon and from SSML's ``<phoneme>`` travels as
the marked spans of :mod:`tts_trio.engines.phonemes`: kept for an engine
that takes IPA (and timed as the word the client wrote), replaced by the
written text, with a warning, for any other.
"""

from __future__ import annotations

from typing import Any

import attrs

from tts_trio.engines import LoadedEngine
from tts_trio.engines.phonemes import mark, pieces
from tts_trio.synthesis.params import clamp_speed
from tts_trio.synthesis.pipeline import ScriptItem, Silence, Spoken
from tts_trio.synthesis.respelling import Respelling
from tts_trio.synthesis.ssml import Document, Speech
from tts_trio.voices.lexicon import Applied, LexiconSnapshot, PhonemeMarkup


def ssml_script(
    document: Document, engine: LoadedEngine, *, speed: float, temperature: float
) -> tuple[ScriptItem, ...]:
    """A parsed SSML document as the pipeline's script, each fragment with its engine's complete voice parameters.

    A fragment's speed is the request's times its SSML factor, clamped to the
    range a request may ask for; fragments at one speed share one dict.
    """
    by_speed: dict[float, dict[str, Any]] = {}
    script: list[ScriptItem] = []
    for segment in document.segments:
        if isinstance(segment, Speech):
            fragment_speed = clamp_speed(speed * segment.speed_factor)
            parameters = by_speed.get(fragment_speed)
            if parameters is None:
                parameters = by_speed[fragment_speed] = engine.voice_parameters(
                    speed=fragment_speed, temperature=temperature
                )
            script.append(Spoken(segment.text, parameters))
        else:
            script.append(Silence(segment.seconds))
    return tuple(script)


def respellings_of(applied: Applied) -> tuple[Respelling, ...]:
    """What each lexicon replacement was spoken as, and the word the client wrote."""
    found = (
        Respelling.of(applied.text[slice(*match.target)], applied.original[slice(*match.source)])
        for match in applied.replacements
    )
    return tuple(respelling for respelling in found if respelling is not None)


def pronounced(
    script: tuple[ScriptItem, ...], lexicon: LexiconSnapshot, engine: LoadedEngine, voice: str | None = None
) -> tuple[tuple[ScriptItem, ...], tuple[str, ...], tuple[Respelling, ...]]:
    """An SSML script as ``engine`` will speak it (breaks stay where they are).

    The lexicon is applied to the text of each spoken fragment, around its
    ``<phoneme>`` spans, which are kept (and timed as their written text) on
    an engine that takes IPA and replaced by their written text elsewhere.
    """
    check = engine.speaks_ipa
    markup = ipa_markup(engine, voice)
    items: list[ScriptItem] = []
    warnings: list[str] = []
    respellings: list[Respelling] = []

    def warn(warning: str) -> None:
        if warning not in warnings:
            warnings.append(warning)

    for item in script:
        if not isinstance(item, Spoken):
            items.append(item)
            continue
        said: list[str] = []
        for piece in pieces(item.text):
            ipa = piece.ipa
            if ipa is not None:
                if check is not None and check(ipa, voice):
                    said.append(mark(ipa, piece.written))
                    found = Respelling.of(ipa, piece.written.strip())
                    if found is not None:
                        respellings.append(found)
                else:
                    said.append(piece.written)
                    reason = "takes no IPA" if check is None else "cannot speak this IPA with this voice"
                    warn(f"<phoneme> was spoken as its text: engine {engine.name!r} {reason}")
            elif len(lexicon):
                applied = lexicon.apply(piece.text, markup)
                said.append(applied.text)
                for warning in applied.warnings:
                    warn(warning)
                respellings += respellings_of(applied)
            else:
                said.append(piece.text)
        items.append(attrs.evolve(item, text="".join(said)))
    return tuple(items), tuple(warnings), tuple(respellings)


def ipa_markup(engine: LoadedEngine, voice: str | None = None) -> PhonemeMarkup | None:
    """How the lexicon hands IPA to ``engine`` speaking with ``voice``: a marked span where it can, else None."""
    check = engine.speaks_ipa
    if check is None:
        return None
    return lambda ipa: mark(ipa) if check(ipa, voice) else None
