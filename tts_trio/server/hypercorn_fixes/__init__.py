"""Fixes for Hypercorn 0.18.0, checked against the installed Hypercorn and installed together.

Each module replaces or wraps one piece of Hypercorn that fails this server
(docs/hypercorn.md has each fix, its upstream issue and when to drop it):
:mod:`.containment` (one connection's error ends the process),
:mod:`.h2_flow_control` (HTTP/2 ignores a slow reader),
:mod:`.h2_closed_stream_data` (closing a WebSocket over HTTP/2 ends the connection),
:mod:`.socket_sends` (an unbounded shielded write holds a connection and
the shutdown), :mod:`.worker_trigger` (bare ``hypercorn`` neither drains
nor refuses ``-w N``).

A patch is right only for the code it was written against, so
:func:`install` first checks every fix (:mod:`.guard`) and applies none
unless all match: on another Hypercorn version or a changed target it
raises :class:`FixMismatch`, and the server refuses to start. The mode
(``TTS_HYPERCORN_FIXES``) overrides that for someone who has checked a new
Hypercorn by hand. ``tts-trio serve``, :mod:`tts_trio.server.asgi` and the
test fixtures call :func:`install`, never the app factory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from tts_trio.server.hypercorn_fixes import (
    containment,
    h2_closed_stream_data,
    h2_flow_control,
    socket_sends,
    worker_trigger,
)
from tts_trio.server.hypercorn_fixes.guard import Fix, FixMismatch, check, describe, is_applied

__all__ = ["FIXES", "MODES", "FixMismatch", "install", "mode_from"]

log = logging.getLogger(__name__)

#: Every fix, in the order they are applied.
FIXES: tuple[Fix, ...] = (
    containment.FIX,
    h2_flow_control.FIX,
    h2_closed_stream_data.FIX,
    socket_sends.FIX,
    worker_trigger.FIX,
)

#: ``verify`` (the default): apply all fixes if every one matches the installed Hypercorn, else refuse.
#: ``unverified``: apply them all even where they do not match, logging a warning for each.
#: ``off``: apply none (to find out whether a new Hypercorn still needs them; never in production).
MODES = ("verify", "unverified", "off")
#: Read by :func:`mode_from` where :func:`install` runs without settings (the ASGI entry, the tests).
ENV_VAR = "TTS_HYPERCORN_FIXES"


def mode_from(environ: Mapping[str, str] | None = None) -> str:
    """The mode set in ``environ`` (default: the process environment); ``verify`` when unset."""
    environ = os.environ if environ is None else environ
    return _valid(environ.get(ENV_VAR, "") or "verify")


def _valid(mode: str) -> str:
    if mode not in MODES:
        raise FixMismatch(f"invalid setting {ENV_VAR}: must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def install(mode: str | None = None, *, fixes: Sequence[Fix] = FIXES) -> None:
    """Check every fix against the installed Hypercorn, then apply them all (idempotent).

    ``mode`` is one of :data:`MODES`; ``None`` reads ``TTS_HYPERCORN_FIXES``.
    Raises :class:`FixMismatch` (one line, naming each fix that does not
    match and why) before applying anything when a fix does not match and
    the mode is ``verify``. ``fixes`` is there for the tests of this rule.
    """
    mode = mode_from() if mode is None else _valid(mode)
    if mode == "off":
        log.warning("%s=off: Hypercorn runs without the fixes it needs (see docs/hypercorn.md)", ENV_VAR)
        return
    mismatches = [(fix, found) for fix in fixes if (found := check(fix))]
    if mismatches and mode == "verify":
        raise FixMismatch(
            "; ".join(describe(fix, found) for fix, found in mismatches)
            + f"; refusing to start (docs/hypercorn.md; {ENV_VAR}=unverified applies them anyway)"
        )
    for fix, found in mismatches:
        log.warning("%s; applied anyway (%s=unverified)", describe(fix, found), ENV_VAR)
    for fix in fixes:
        try:
            if not is_applied(fix):
                fix.apply()
        except (ImportError, AttributeError) as error:
            if mode == "verify":  # every target was found: a bug of ours, not a changed Hypercorn
                raise
            log.warning("hypercorn fix %r could not be applied (%s); serving without it", fix.name, error)
