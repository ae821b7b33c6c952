"""The engine protocols: the optional parts are recognised by what an engine has, not by its class."""

from __future__ import annotations

from tests.support.engines import PacedEngine
from tts_trio.engines.catalog import CATALOG, SystemConfig
from tts_trio.engines.contract import ListsVoices, Startable
from tts_trio.settings import Settings


def test_contract_espeak_starts_and_lists_its_voices_offline() -> None:
    engine = CATALOG["system"].create(SystemConfig(), Settings.load(environ={}))
    try:
        assert isinstance(engine, Startable)
        assert isinstance(engine, ListsVoices)
    finally:
        engine.shutdown()


def test_contract_an_engine_without_a_voice_list_is_not_taken_for_one() -> None:
    engine = PacedEngine()
    assert not isinstance(engine, ListsVoices)
    engine.set_voice_parameters(temperature=0.3)
    assert engine.voice_parameters == [{"temperature": 0.3}]
