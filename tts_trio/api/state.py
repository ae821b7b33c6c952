"""The one typed object an app carries, and how a request reaches it.

Everything a route needs besides the request itself (settings, the drain
state, metrics, the pronunciation lexicon, and once the app serves, the :class:`TtsService`) lives on
one :class:`AppState` under one key of ``app.extensions``. Routes call
:func:`current_state` or :func:`current_service`; they never import the app
factory, so the factory can import the routes without a cycle.
"""

from __future__ import annotations

from typing import Any

import attrs
from quart import current_app

from tts_trio.api.security import Cors, KeyRing
from tts_trio.errors import EngineUnavailable
from tts_trio.observability import Metrics
from tts_trio.settings import Settings
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.service import TtsService
from tts_trio.voices.lexicon import Lexicon

#: The key of ``app.extensions`` that holds the :class:`AppState`.
STATE_KEY = "tts_trio"


@attrs.define(eq=False)
class AppState:
    """What one app shares between its requests."""

    settings: Settings
    shutdown: Shutdown
    metrics: Metrics
    keys: KeyRing
    cors: Cors
    #: The pronunciation lexicon, a file in the voice store's directory (``settings.voices_path``),
    #: which replicas share; it reads the disk on use, so it needs no opening and works without the engine.
    lexicon: Lexicon
    #: Opened when the app starts serving, closed when it stops; None in between.
    service: TtsService | None = None

    def require_service(self) -> TtsService:
        """The running service, or 503 ``engine_unavailable`` while there is none."""
        if self.service is None:
            raise EngineUnavailable("the engine is not ready")
        return self.service


def state_of(app: Any) -> AppState | None:
    """The state of ``app`` (a Quart app, or anything else: then None)."""
    extensions = getattr(app, "extensions", None)
    state = extensions.get(STATE_KEY) if isinstance(extensions, dict) else None
    return state if isinstance(state, AppState) else None


def current_state() -> AppState:
    """The state of the app handling the current request."""
    state = state_of(current_app)
    assert state is not None, "create_app() puts the state on every app"
    return state


def current_service() -> TtsService:
    """The service of the app handling the current request (503 before it serves)."""
    return current_state().require_service()


def current_settings() -> Settings:
    return current_state().settings
