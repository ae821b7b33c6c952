"""A module-level app for ``hypercorn -c hypercorn.toml tts_trio.asgi:app``.

Settings come from the environment (``TTS_ENGINE``, ``TTS_VOICES_PATH``, ...);
``tts-trio serve`` is the usual way to start the server.
"""

from tts_trio.app import create_app

app = create_app()
