"""``hypercorn -c hypercorn.toml tts_trio.asgi:app``: the stable name of the ASGI entry point.

The entry itself is :mod:`tts_trio.server.asgi`; this alias keeps the
command that deployments already use working.
"""

from tts_trio.server.asgi import app

__all__ = ["app"]
