from pathlib import Path

import pytest

from tts_trio.settings import Settings, SettingsError


def test_settings_defaults_follow_the_original_api() -> None:
    settings = Settings.load(environ={})
    assert settings.engine == "system"
    assert settings.voices_path == Path("voices")
    assert settings.port == 8000


def test_settings_environment_then_flags() -> None:
    env = {"TTS_ENGINE": "system", "TTS_PORT": "9001", "TTS_VOICES_PATH": "/srv/voices", "TTS_SLOTS": "3"}
    settings = Settings.load({"port": 9002, "slots": None}, environ=env)
    assert settings.port == 9002  # the flag wins
    assert settings.slots == 3  # a flag that was not given does not hide the environment
    assert settings.voices_path == Path("/srv/voices")


def test_settings_keys_are_not_in_repr() -> None:
    settings = Settings.load(environ={"OPENAI_API_KEY": "sk-secret", "ELEVENLABS_API_KEY": "el-secret"})
    assert settings.openai_api_key == "sk-secret"
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"TTS_PORT": "abc"}, {}, "invalid setting TTS_PORT: expected an integer, got 'abc'"),
        ({"TTS_PORT": "70000"}, {}, "invalid setting TTS_PORT: must be between 0 and 65535, got 70000"),
        ({}, {"slots": 0}, "invalid setting --slots: must be between 1 and 256, got 0"),
        ({"TTS_LOG_LEVEL": "loud"}, {}, "invalid setting TTS_LOG_LEVEL: must be one of"),
        ({"TTS_DEBUG": "maybe"}, {}, "invalid setting TTS_DEBUG: expected true or false"),
        ({}, {"engine": " "}, "invalid setting --engine: must not be empty"),
        ({"TTS_ENGINES": "piper;kokoro"}, {}, "invalid setting TTS_ENGINES: expected engine names separated by commas"),
        ({"TTS_MODEL_ENGINES": "tts-1"}, {}, "invalid setting TTS_MODEL_ENGINES: expected MODEL=ENGINE pairs"),
        ({"TTS_MODEL_ENGINES": "tts-1="}, {}, "invalid setting TTS_MODEL_ENGINES: expected MODEL=ENGINE pairs"),
        ({"TTS_FLEET_POLL": "-1"}, {}, "invalid setting TTS_FLEET_POLL: must be between 0 and 3600"),
    ],
)
def test_settings_errors_are_one_line_naming_the_setting(
    env: dict[str, str], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load(overrides, environ=env)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_backlog_and_connection_cap_from_environment_and_flags() -> None:
    defaults = Settings.load(environ={})
    assert (defaults.backlog, defaults.max_connections) == (None, None)  # derived at start-up
    env = {"TTS_BACKLOG": "4096", "TTS_MAX_CONNECTIONS": "500"}
    assert Settings.load(environ=env).backlog == 4096
    assert Settings.load({"max_connections": 0}, environ=env).max_connections == 0  # 0: no cap; the flag wins
    assert defaults.gc_tuning is True
    assert Settings.load(environ={"TTS_GC_TUNING": "false"}).gc_tuning is False


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"TTS_BACKLOG": "0"}, {}, "invalid setting TTS_BACKLOG: must be between 1 and 65535, got 0"),
        ({}, {"backlog": 70000}, "invalid setting --backlog: must be between 1 and 65535, got 70000"),
        ({"TTS_MAX_CONNECTIONS": "-1"}, {}, "invalid setting TTS_MAX_CONNECTIONS: must be between 0 and 100000"),
        ({"TTS_MAX_CONNECTIONS": "lots"}, {}, "invalid setting TTS_MAX_CONNECTIONS: expected an integer"),
    ],
)
def test_backlog_and_connection_cap_errors_name_the_setting(
    env: dict[str, str], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load(overrides, environ=env)
    assert str(info.value).startswith(message)


def test_resident_engines_are_the_listed_ones_and_the_mapped_ones_once_each() -> None:
    settings = Settings.load(
        environ={"TTS_ENGINES": " piper , system,", "TTS_MODEL_ENGINES": "tts-1-hd=piper, narrator = kokoro"}
    )
    assert settings.resident_engines == ["piper", "system", "kokoro"]
    assert settings.model_engine_map == {"tts-1-hd": "piper", "narrator": "kokoro"}
    assert Settings.load(environ={}).resident_engines == []
