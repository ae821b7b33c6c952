"""Fixes for Hypercorn 0.18, installed once by the entry points that serve.

Each module replaces one piece of Hypercorn that fails this server:
:mod:`.containment` (one connection's error ends the process),
:mod:`.h2_flow_control` (HTTP/2 ignores a slow reader),
:mod:`.socket_sends` (an unbounded shielded write holds a connection and
the shutdown). :func:`install` applies them all; ``tts-trio serve``,
:mod:`tts_trio.server.asgi` and the test fixtures call it, never the app
factory.
"""

from __future__ import annotations

from tts_trio.server.hypercorn_fixes import containment, h2_flow_control, socket_sends


def install() -> None:
    """Apply every fix (idempotent)."""
    containment.install()
    h2_flow_control.install()
    socket_sends.install()
