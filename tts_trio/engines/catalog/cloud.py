"""Cloud engines: Azure, OpenAI, ElevenLabs, Edge and gTTS (they need the network while speaking).

None of these services exposes a sampling temperature through RealtimeTTS
0.8.10's engine, so each says it ignores a request's ``temperature``.
Two RealtimeTTS engines report a rate they do not deliver; the adapters
here (``OpenAIPcmEngine``, ``GTTSPcmEngine``) fix that at the engine boundary.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import attrs

from tts_trio.engines.catalog.base import (
    PA_INT16,
    Capabilities,
    EngineConfig,
    ignores_temperature,
    not_blank,
    one_of,
)
from tts_trio.engines.catalog.entry import CatalogEntry, rtts
from tts_trio.engines.catalog.probes import Probe
from tts_trio.engines.contract import Engine
from tts_trio.settings import Settings

AZURE_AUDIO_FORMATS = ("riff-16khz-16bit-mono-pcm", "riff-24khz-16bit-mono-pcm", "riff-48khz-16bit-mono-pcm")
#: OpenAI's ``pcm`` response format is 24 kHz 16-bit mono (OpenAI's API reference).
OPENAI_PCM_RATE = 24_000
#: The rate the gTTS engine here resamples to; Google's MP3 is 24 kHz, so this is lossless.
GTTS_RATE = 24_000


# -- azure -----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AzureConfig(EngineConfig):
    """Azure Speech: a neural voice name and the PCM format Azure sends."""

    voice: str = attrs.field(default="en-US-AriaNeural", validator=not_blank)
    audio_format: str = attrs.field(default=AZURE_AUDIO_FORMATS[0], validator=one_of(*AZURE_AUDIO_FORMATS))


def _create_azure(config: AzureConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.azure_engine import AzureEngine

    return AzureEngine(  # type: ignore[no-any-return]
        speech_key=settings.azure_speech_key or "",
        service_region=settings.azure_speech_region or "",
        voice=config.voice,
        audio_format=config.audio_format,
    )


AZURE = CatalogEntry(
    name="azure",
    description="Microsoft Azure Speech neural voices (cloud; needs a key and a region)",
    **rtts("azure", "azure.cognitiveservices.speech", "requests"),
    env=("AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION"),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=False,
        languages=("multilingual",),
        sample_rate=16000,
        gpu="no",
        network=True,
        temperature=ignores_temperature("Azure's SSML has rate and pitch but no sampling temperature"),
    ),
    config_class=AzureConfig,
    factory=_create_azure,
)


# -- openai ----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OpenAIConfig(EngineConfig):
    """OpenAI speech: ``model`` (tts-1, tts-1-hd, gpt-4o-mini-tts), a voice, optional style instructions."""

    model: str = attrs.field(default="tts-1", validator=not_blank)
    voice: str = attrs.field(default="alloy", validator=not_blank)
    #: How to speak (gpt-4o-mini-tts only), e.g. "calm and slow".
    instructions: str | None = None


@functools.cache
def openai_pcm_engine() -> Callable[..., Engine]:
    """OpenAIEngine asking for raw PCM and reporting its true rate.

    RealtimeTTS 0.8.10 reports 22050 Hz for ``pcm``, but OpenAI sends 24 kHz,
    which would play 9% slow and low. PCM (not the default MP3) because the
    server streams raw PCM from its engines.
    """
    from RealtimeTTS.engines.openai_engine import OpenAIEngine

    class OpenAIPcmEngine(OpenAIEngine):  # type: ignore[misc]
        def get_stream_info(self) -> tuple[int, int, int]:
            return PA_INT16, 1, OPENAI_PCM_RATE

    return OpenAIPcmEngine


def _create_openai(config: OpenAIConfig, settings: Settings) -> Engine:
    return openai_pcm_engine()(
        model=config.model,
        voice=config.voice,
        instructions=config.instructions,
        response_format="pcm",
        api_key=settings.openai_api_key,
    )


OPENAI = CatalogEntry(
    name="openai",
    description="OpenAI text-to-speech: tts-1, tts-1-hd, gpt-4o-mini-tts (cloud; needs a key)",
    **rtts("openai", "openai"),
    env=("OPENAI_API_KEY",),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=False,
        languages=("multilingual",),
        sample_rate=OPENAI_PCM_RATE,
        gpu="no",
        network=True,
        temperature=ignores_temperature("OpenAI's speech API takes no temperature (use config.instructions)"),
    ),
    config_class=OpenAIConfig,
    factory=_create_openai,
)


# -- elevenlabs ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ElevenlabsConfig(EngineConfig):
    """ElevenLabs: the voice is chosen by its id; RealtimeTTS uses a voice *name* only as a label."""

    voice_id: str = attrs.field(default="piTKgcLEGmPE4e6mEKli", validator=not_blank)  # "Nicole"
    model: str = attrs.field(default="eleven_multilingual_v2", validator=not_blank)


def _create_elevenlabs(config: ElevenlabsConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.elevenlabs_engine import ElevenlabsEngine

    return ElevenlabsEngine(  # type: ignore[no-any-return]
        api_key=settings.elevenlabs_api_key or "", id=config.voice_id, model=config.model
    )


ELEVENLABS = CatalogEntry(
    name="elevenlabs",
    description="ElevenLabs voices (cloud; needs a key; sends MP3)",
    **rtts("elevenlabs", "elevenlabs"),
    env=("ELEVENLABS_API_KEY",),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=False,
        languages=("multilingual",),
        sample_rate=None,
        gpu="no",
        network=True,
        temperature=ignores_temperature("ElevenLabs voices take stability and style, not a temperature"),
    ),
    config_class=ElevenlabsConfig,
    factory=_create_elevenlabs,
)


# -- edge ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EdgeConfig(EngineConfig):
    """Microsoft Edge online voices: a voice short name."""

    voice: str = attrs.field(default="en-US-EmmaMultilingualNeural", validator=not_blank)


def _create_edge(config: EdgeConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.edge_engine import EdgeEngine, EdgeVoice

    engine = EdgeEngine()
    # Set directly: EdgeEngine.set_voice downloads the whole voice list to match a name.
    engine.current_voice = EdgeVoice(config.voice)
    return engine  # type: ignore[no-any-return]


EDGE = CatalogEntry(
    name="edge",
    description="Microsoft Edge's online neural voices (cloud; no key; sends MP3)",
    **rtts("edge", "edge_tts"),
    env=(),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=False,
        languages=("multilingual",),
        sample_rate=None,
        gpu="no",
        network=True,
        temperature=ignores_temperature("Edge's voices take rate, pitch and volume only"),
    ),
    config_class=EdgeConfig,
    factory=_create_edge,
)


# -- gtts ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GTTSConfig(EngineConfig):
    """gTTS: a language code and the Google domain that sets the accent (``com``, ``co.uk``, ...)."""

    language: str = attrs.field(default="en", validator=not_blank)
    tld: str = attrs.field(default="com", validator=not_blank)


def _check_gtts(config: GTTSConfig, probe: Probe) -> list[str]:
    if probe.which("ffmpeg") is None and probe.which("avconv") is None:
        return ["ffmpeg is not installed (pydub needs it to decode gTTS's MP3): sudo apt-get install ffmpeg"]
    return []


@functools.cache
def gtts_pcm_engine() -> Callable[..., Engine]:
    """GTTSEngine that decodes in memory and delivers exactly what it reports.

    RealtimeTTS 0.8.10's GTTSEngine writes every instance's audio to the same
    file in the temp directory (two slots overwrite each other) and reports
    22050 Hz whatever rate the decoded MP3 has. This one decodes in memory and
    resamples to :data:`GTTS_RATE`, so several slots are safe and the rate is true.
    """
    from RealtimeTTS.engines.gtts_engine import GTTSEngine

    class GTTSPcmEngine(GTTSEngine):  # type: ignore[misc]
        def get_stream_info(self) -> tuple[int, int, int]:
            return PA_INT16, 1, GTTS_RATE

        def synthesize(self, text: str, sentence_count: int = 0) -> bool:
            from gtts import gTTS
            from pydub import AudioSegment

            super(GTTSEngine, self).synthesize(text, sentence_count)  # BaseEngine's bookkeeping only
            mp3 = io.BytesIO()
            gTTS(text=text, lang=self.voice.language, tld=self.voice.tld).write_to_fp(mp3)
            mp3.seek(0)
            audio = AudioSegment.from_file(mp3, format="mp3")
            audio = audio.set_channels(1).set_sample_width(2).set_frame_rate(GTTS_RATE)
            self.queue.put(audio.raw_data)
            return True

    return GTTSPcmEngine


def _create_gtts(config: GTTSConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.gtts_engine import GTTSVoice

    return gtts_pcm_engine()(voice=GTTSVoice(language=config.language, tld=config.tld))


GTTS = CatalogEntry(
    name="gtts",
    description="Google Translate's voice through gTTS (cloud; no key; one request per sentence)",
    **rtts("gtts", "gtts", "pydub"),
    env=(),
    capabilities=Capabilities(
        streaming="sentence",
        cloning=False,
        languages=("multilingual",),
        sample_rate=GTTS_RATE,
        gpu="no",
        network=True,
        temperature=ignores_temperature("gTTS fetches Google Translate's one fixed voice"),
    ),
    config_class=GTTSConfig,
    factory=_create_gtts,
    check=_check_gtts,
)
