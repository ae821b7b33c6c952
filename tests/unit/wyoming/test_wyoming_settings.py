"""The Wyoming settings: off by default, a port from the flag or TTS_WYOMING_PORT."""

from __future__ import annotations

import pytest

from tts_trio.settings import Settings, SettingsError


def test_the_listener_is_off_by_default() -> None:
    settings = Settings.load(environ={})
    assert settings.wyoming_port is None and settings.wyoming_host is None and not settings.wyoming_zeroconf


def test_port_host_and_zeroconf_come_from_the_environment_and_flags_win() -> None:
    environ = {"TTS_WYOMING_PORT": "10200", "TTS_WYOMING_HOST": "0.0.0.0", "TTS_WYOMING_ZEROCONF": "yes"}
    settings = Settings.load(environ=environ)
    assert (settings.wyoming_port, settings.wyoming_host, settings.wyoming_zeroconf) == (10200, "0.0.0.0", True)
    assert Settings.load({"wyoming_port": 10300}, environ=environ).wyoming_port == 10300


def test_a_bad_port_names_its_source() -> None:
    with pytest.raises(SettingsError, match="TTS_WYOMING_PORT: must be between 0 and 65535"):
        Settings.load(environ={"TTS_WYOMING_PORT": "70000"})
