"""What every catalog entry is made of: capabilities, availability, and the common config.

Each engine family module (:mod:`.system`, :mod:`.cloud`, :mod:`.local_models`)
builds its entries from these pieces, so a client sees one shape for every
engine and a config error reads the same whichever engine it is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

STREAMING = ("sentence", "chunk")
GPU_USE = ("no", "optional", "required")
DEVICES = ("cuda", "mps", "cpu")
MAX_SLOTS = 256
#: PyAudio's ``paInt16``: RealtimeTTS reports sample formats as PyAudio constants.
PA_INT16 = 8

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _member(choices: tuple[str, ...]) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class TemperatureUse:
    """Whether a request's ``temperature`` reaches the engine, and as what.

    Requests always carry a temperature (0–2, default 0.7); most engines have
    no sampling to steer, so the catalog says per engine what happens to it
    rather than leaving clients to guess.
    """

    #: The ``set_voice_parameters`` keyword the value is passed as; ``None``: ignored.
    parameter: str | None
    #: What the value becomes, or why it is ignored (for people reading ``GET /v1/engines``).
    note: str

    @property
    def used(self) -> bool:
        return self.parameter is not None

    def voice_parameters(self, temperature: float) -> dict[str, Any]:
        """The engine's voice parameters for a request's temperature (empty when ignored)."""
        return {self.parameter: temperature} if self.parameter else {}

    def to_dict(self) -> dict[str, Any]:
        return {"used": self.used, "parameter": self.parameter, "note": self.note}


def ignores_temperature(why: str) -> TemperatureUse:
    """A request's temperature does not reach this engine, because ``why``."""
    return TemperatureUse(parameter=None, note=f"ignored: {why}")


@attrs.frozen(kw_only=True)
class Capabilities:
    """What an engine offers, shown to clients so they can pick one."""

    #: ``sentence``: audio arrives when a whole sentence is synthesized;
    #: ``chunk``: audio streams while the sentence is still being synthesized.
    streaming: str = attrs.field(validator=_member(STREAMING))
    #: Voice cloning from a reference recording.
    cloning: bool
    #: A short honest list of language codes, or ``("multilingual",)``.
    languages: tuple[str, ...]
    #: The rate the engine delivers by default; ``None`` where it sends a
    #: compressed (MP3) stream or the rate comes from the chosen voice file.
    sample_rate: int | None
    #: ``no``, ``optional`` (runs on CPU, much faster on a GPU) or ``required``.
    gpu: str = attrs.field(validator=_member(GPU_USE))
    #: Needs internet access while speaking (not checked: it cannot be known in advance).
    network: bool
    #: What a request's ``temperature`` does on this engine.
    temperature: TemperatureUse

    def to_dict(self) -> dict[str, Any]:
        return {
            "streaming": self.streaming,
            "cloning": self.cloning,
            "languages": list(self.languages),
            "sample_rate": self.sample_rate,
            "gpu": self.gpu,
            "network": self.network,
            "temperature": self.temperature.to_dict(),
        }


@attrs.frozen
class Availability:
    """Whether an engine can start here, and if not, what to do about it."""

    available: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason}


# -- config validation -----------------------------------------------------------------------------


class InvalidConfig(ValueError):
    """Raised by a config validator; carries the field so the 422 can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def not_blank(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise InvalidConfig(attribute.name, "must not be empty")


def one_of(*choices: str) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in choices:
            raise InvalidConfig(attribute.name, f"must be one of {', '.join(choices)}, got {value!r}")

    return check


def between(low: float, high: float) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not low <= value <= high:
            raise InvalidConfig(attribute.name, f"must be between {low:g} and {high:g}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class EngineConfig:
    """Options common to every engine."""

    #: Engine instances (concurrent syntheses); ``None`` sizes it from the hardware.
    slots: int | None = attrs.field(default=None, validator=between(1, MAX_SLOTS))
