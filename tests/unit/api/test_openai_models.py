"""OpenAI model names: which the speech route accepts, and that every accepted name is listed."""

from __future__ import annotations

import pytest

from tts_trio.api.routes.openai import MODEL_ALIASES, MODELS, canonical_model, model_names


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("tts-1", "tts-1"),
        ("tts-1-1106", "tts-1"),
        ("tts-1-hd-1106", "tts-1-hd"),
        ("gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts"),
        ("gpt-4o-mini-tts-2025-12-15", "gpt-4o-mini-tts"),
        ("system", "system"),
    ],
)
def test_dated_and_legacy_names_stand_for_their_model(name: str, model: str) -> None:
    assert canonical_model(name, ["system"]) == model


@pytest.mark.parametrize("name", ["tts-9", "gpt-4o-mini-tts-2099-01-01", "TTS-1", "piper", ""])
def test_other_names_are_unknown(name: str) -> None:
    """Names are exact, as on OpenAI; another engine's name is not a model while only ``system`` is loaded."""
    assert canonical_model(name, ["system"]) is None


def test_every_loaded_engine_and_every_mapped_model_is_a_model() -> None:
    mapped = {"tts-1-hd": "piper", "narrator": "piper"}
    assert canonical_model("piper", ["system", "piper"]) == "piper"
    assert canonical_model("narrator", ["system"], mapped) == "narrator"
    assert canonical_model("tts-1-hd-1106", ["system"], mapped) == "tts-1-hd"
    names = model_names(["system", "piper"], mapped)
    assert names[-3:] == ["narrator", "system", "piper"] and len(names) == len(set(names))


def test_the_listing_is_exactly_what_is_accepted() -> None:
    names = model_names(["piper"])
    assert len(names) == len(set(names))
    assert all(canonical_model(name, ["piper"]) is not None for name in names)
    assert set(names) == {*MODELS, *MODEL_ALIASES, "piper"}
    assert set(MODEL_ALIASES.values()) <= set(MODELS)
