"""One row of the catalog: an engine's description, needs, options, and how to build it.

Secrets: keys are read from :class:`~tts_trio.settings.Settings` (whose repr
hides them) and passed straight to the engine's constructor. No repr, message
or dict here holds one; messages name the environment variable, never its value.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from tts_trio.engines.catalog.base import Availability, Capabilities, EngineConfig, InvalidConfig
from tts_trio.engines.catalog.probes import Check, FindSpec, Probe, Which, huggingface_cache, installed, no_check
from tts_trio.engines.contract import Engine
from tts_trio.engines.hardware import Device
from tts_trio.engines.hardware import default_slots as hardware_default_slots
from tts_trio.errors import EngineLoadError, InvalidParameter
from tts_trio.settings import ENV_VARS, Settings
from tts_trio.strict import strict_converter

_SETTING_FOR_ENV = {var: name for name, var in ENV_VARS.items()}

#: Builds one instance; blocking (models load here).
Factory = Callable[[Any, Settings], Engine]
#: Config values that come from server settings rather than the config class: (settings, request data) -> defaults.
SettingsDefaults = Callable[[Settings, Mapping[str, Any]], dict[str, Any]]


def _no_defaults(settings: Settings, data: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def rtts(extra: str, *modules: str) -> dict[str, Any]:
    """The package fields of a RealtimeTTS engine: every one imports PyAudio at module level."""
    return {"extra": extra, "modules": ("pyaudio", *modules)}


@attrs.frozen(kw_only=True)
class CatalogEntry:
    """One engine: its description, its needs, its options, and how to build it."""

    name: str
    description: str
    #: The RealtimeTTS extra that installs its Python packages (``None``: nothing to install).
    extra: str | None
    #: Import names that must be importable; checked with ``find_spec``, never imported.
    modules: tuple[str, ...]
    #: Environment variables that must be set (read through ``Settings``).
    env: tuple[str, ...]
    capabilities: Capabilities
    config_class: type[EngineConfig]
    #: Slots at most when sizing from the hardware on a CPU: each instance holds a model,
    #: and one instance already keeps every core busy.
    cpu_slots: int | None = None
    #: The install command when it is not a RealtimeTTS extra (engines of our own, like piper).
    install_command: str | None = None
    _factory: Factory = attrs.field(alias="factory", repr=False)
    _check: Check = attrs.field(alias="check", default=no_check, repr=False)
    _settings_defaults: SettingsDefaults = attrs.field(alias="settings_defaults", default=_no_defaults, repr=False)

    @property
    def install(self) -> str | None:
        """The command that installs this engine's Python packages."""
        if self.install_command is not None:
            return self.install_command
        return f'pip install "realtimetts[{self.extra}]"' if self.extra else None

    def parse(self, data: object, *, settings: Settings) -> EngineConfig:
        """Structure and validate ``data`` (decoded JSON, or ``None`` for all defaults) as this engine's config.

        Strict on purpose: unknown keys and wrong types are a 422 that names the
        field (``config.voice: expected a string``), never a silent conversion.
        """
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidParameter("config: expected an object", field="config")
        data = {**self._settings_defaults(settings, data), **data}
        try:
            return _converter.structure(data, self.config_class)
        except cattrs.ClassValidationError as group:
            message, field = _describe(group)
            raise InvalidParameter(message, field=field) from None

    def default_config(self, settings: Settings) -> EngineConfig:
        """The config used when a switch gives none (may depend on settings, as Chatterbox's does)."""
        return self.parse({}, settings=settings)

    def availability(
        self,
        settings: Settings,
        config: EngineConfig | None = None,
        *,
        find_spec: FindSpec = importlib.util.find_spec,
        which: Which = shutil.which,
        hf_cache: Path | None = None,
    ) -> Availability:
        """Whether this engine can start here with ``config`` (default: its default config).

        Every problem is listed, each with what to do, so one look fixes them all.
        """
        probe = Probe(find_spec, which, huggingface_cache() if hf_cache is None else hf_cache)
        problems = self._missing_packages(find_spec)
        unset = self.unset_env(settings)
        if unset:
            problems.append(f"set {' and '.join(unset)} in the server's environment")
        if config is None:
            try:
                config = self.default_config(settings)
            except InvalidParameter as error:
                problems.append(error.message)
        if config is not None:
            problems += self._check(config, probe)
        return Availability(False, "; ".join(problems)) if problems else Availability(True)

    def unset_env(self, settings: Settings) -> list[str]:
        """Names (never values) of the required variables that have no value."""
        return [var for var in self.env if not getattr(settings, _SETTING_FOR_ENV[var])]

    def _missing_packages(self, find_spec: FindSpec) -> list[str]:
        missing = [module for module in self.modules if not installed(module, find_spec)]
        if not missing:
            return []
        hint = f"Python package(s) missing ({', '.join(missing)}): {self.install}"
        if "pyaudio" in missing:
            hint += " (PyAudio compiles against PortAudio: sudo apt-get install portaudio19-dev first)"
        return [hint]

    def create(self, config: EngineConfig, settings: Settings) -> Engine:
        """Build one engine instance (blocking: models load here, so call it in a worker thread).

        Raises :class:`EngineLoadError` with what to do when a package or key is
        missing, or when the engine fails to start; the library's own error is
        the chained cause, for the log.
        """
        if not isinstance(config, self.config_class):
            raise TypeError(f"engine {self.name!r} takes a {self.config_class.__name__}")
        unset = self.unset_env(settings)
        if unset:
            raise EngineLoadError(f"engine {self.name!r} needs {' and '.join(unset)} to be set", engine=self.name)
        try:
            return self._factory(config, settings)
        except EngineLoadError:
            raise
        except ImportError as error:
            missing = f" (missing module: {error.name})" if error.name else ""
            fix = f"; install it with: {self.install}" if self.install else ""
            message = f"engine {self.name!r} cannot be loaded{missing}{fix}"
            raise EngineLoadError(message, engine=self.name) from error
        except Exception as error:
            raise EngineLoadError(
                f"engine {self.name!r} failed to start; see the server log", engine=self.name
            ) from error

    def default_slots(self, device: Device) -> int:
        """Slots when none are configured, from the hardware (see :func:`tts_trio.engines.hardware.default_slots`)."""
        slots = hardware_default_slots(device, gpu=self.capabilities.gpu)
        if device.kind == "cpu" and self.cpu_slots is not None:
            slots = min(slots, self.cpu_slots)
        return slots

    def describe(
        self,
        settings: Settings,
        *,
        find_spec: FindSpec = importlib.util.find_spec,
        which: Which = shutil.which,
        hf_cache: Path | None = None,
    ) -> dict[str, Any]:
        """This engine as JSON for ``GET /v1/engines``: no key values, only variable names."""
        try:
            config: dict[str, Any] | None = attrs.asdict(self.default_config(settings))
        except InvalidParameter:
            config = None
        availability = self.availability(settings, find_spec=find_spec, which=which, hf_cache=hf_cache)
        return {
            "name": self.name,
            "description": self.description,
            "capabilities": self.capabilities.to_dict(),
            **availability.to_dict(),
            "install": self.install,
            "env": list(self.env),
            "config": config,
        }


def _describe(group: cattrs.ClassValidationError) -> tuple[str, str]:
    """The first problem as (message, field), the field written as the client sent it."""
    with_notes, others = group.group_exceptions()
    for exc, note in with_notes:
        field = f"config.{note.name}"
        if isinstance(exc, KeyError):
            return f"{field}: required field missing", field
        return f"{field}: {exc}", field
    for exc in others:
        if isinstance(exc, ForbiddenExtraKeysError):
            return f"config: unknown field(s): {', '.join(sorted(exc.extra_fields))}", "config"
        if isinstance(exc, InvalidConfig):
            return f"config.{exc.field}: {exc}", f"config.{exc.field}"
    return "config: invalid", "config"


_converter = strict_converter()
