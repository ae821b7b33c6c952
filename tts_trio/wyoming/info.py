"""``describe`` → ``info``, and a ``synthesize`` event's voice → our ``voice_id``.

Home Assistant lists the program's voices by language and sends back the
name of the one chosen (or only a language), so a voice's ``name`` here is
its ``voice_id`` elsewhere in the API, and its human name is the
description. The list is of the current engine, read at each ``describe``,
so it follows an engine switch.
"""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import SynthesizeVoice

from tts_trio import __version__
from tts_trio.synthesis.service import TtsService

#: The engines come from RealtimeTTS; Home Assistant shows this beside each voice.
ATTRIBUTION = Attribution(name="RealtimeTTS", url="https://github.com/KoljaB/RealtimeTTS")


def describe(service: TtsService) -> Info:
    """The one TTS program this server is: the current engine's voices, streaming input supported."""
    voices = [
        TtsVoice(
            name=voice.id,
            attribution=ATTRIBUTION,
            installed=True,
            description=voice.name,
            version=None,
            languages=[voice.language] if voice.language else [],
        )
        for voice in service.voices.values()
    ]
    program = TtsProgram(
        name="tts-trio",
        attribution=ATTRIBUTION,
        installed=True,
        description=f"tts-trio streaming TTS ({service.pool.name})",
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


def _language_key(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def voice_id_for(service: TtsService, voice: SynthesizeVoice | None) -> str:
    """The ``voice_id`` a request's voice means: its name, else a voice of its language, else the default.

    A language matches exactly first (``en-us``), then by its main part
    (``en`` for ``en_GB`` when there is no ``en-gb``); one the engine does not
    speak keeps the default voice rather than failing the request.
    """
    if voice is None:
        return "default"
    if voice.name:
        return voice.name
    if voice.language:
        wanted = _language_key(voice.language)
        main = wanted.partition("-")[0]
        voices = list(service.voices.values())
        for candidate in voices:
            if _language_key(candidate.language) == wanted:
                return str(candidate.id)
        for candidate in voices:
            if _language_key(candidate.language).partition("-")[0] == main:
                return str(candidate.id)
    return "default"
