"""A module-level app for ``hypercorn -c hypercorn.toml tts_trio.server.asgi:app``.

Settings come from the environment (``TTS_ENGINE``, ``TTS_VOICES_PATH``, ...);
``tts-trio serve`` is the usual way to start the server.

Importing this module installs the Hypercorn fixes
(:mod:`tts_trio.server.hypercorn_fixes`), among them the one that makes the
app drain on Hypercorn's shutdown trigger and refuse ``-w N``. Hypercorn's
worker imports the app before it starts serving, so they are in place in
time. If a fix does not match the installed Hypercorn, the worker prints
one line and exits 2 instead of serving (``TTS_HYPERCORN_FIXES`` overrides).
"""

from __future__ import annotations

import sys

from tts_trio.api.app import create_app
from tts_trio.server import collector, connection_limit, hypercorn_fixes
from tts_trio.settings import Settings

try:
    hypercorn_fixes.install()  # mode from TTS_HYPERCORN_FIXES: no Settings exist yet
except hypercorn_fixes.FixMismatch as error:
    print(f"tts-trio: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None

_settings = Settings.load()
app = create_app(_settings)
collector.install(app, _settings.gc_tuning)
# The cap on connections (TTS_MAX_CONNECTIONS); the listen backlog is hypercorn.toml's ``backlog``.
connection_limit.install(app, connection_limit.effective_max_connections(_settings))
