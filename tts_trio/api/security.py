"""API keys and CORS.

Keys are optional: with none configured every route is open (a local
server next to an app). With ``TTS_API_KEYS`` (comma-separated, or one per
line in the file named by ``TTS_API_KEYS_FILE``) every ``/v1`` and ``/tts``
route needs ``Authorization: Bearer <key>``, or the key the way a vendor's
client library sends it (``Authorization: Token`` from Deepgram's,
``xi-api-key`` from ElevenLabs', ``X-API-Key`` from Cartesia's LiveKit
plugin): those clients cannot be told to send another header, and a key is
a key whichever header carries it. ``TTS_ADMIN_KEYS`` are also needed for what
changes the server (engine switch, voice create/delete/set). Browsers cannot
set headers on a WebSocket, so a key may also arrive as a WebSocket
subprotocol ``bearer.<key>`` next to ``tts-trio`` (which the server then
selects); that keeps keys out of URLs and so out of access logs. Keys are
compared in constant time, all of them, and never logged or echoed.

CORS is off unless ``TTS_CORS_ORIGINS`` lists origins; ``*`` allows any
origin but never together with credentials (the API uses bearer tokens, not
cookies, so it never needs them).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

import attrs
from quart import Response, request, websocket

from tts_trio.errors import Forbidden, Unauthorized

#: Routes that change the server: an admin key is needed when keys are configured.
ADMIN_ROUTES = {
    ("POST", "/v1/engines/switch"),
    ("POST", "/v1/voices/create"),
    ("PUT", "/v1/lexicon"),
}
ADMIN_PREFIXES = (
    ("DELETE", "/v1/voices/"),
    ("POST", "/v1/voices/"),
    ("PUT", "/v1/lexicon/"),
    ("DELETE", "/v1/lexicon/"),
)
WS_SUBPROTOCOL = "tts-trio"
_BEARER_PROTOCOL = "bearer."
#: Paths behind the keys: ours and the OpenAI/ElevenLabs/Deepgram ones under /v1, Cartesia's under /tts.
GUARDED_PREFIXES = ("/v1/", "/tts/")
#: ``Authorization`` schemes taken as carrying a key (Deepgram's clients send ``Token``).
_SCHEMES = ("bearer", "token")
#: Headers the vendor clients put their key in.
_KEY_HEADERS = ("xi-api-key", "x-api-key")


@attrs.frozen
class KeyRing:
    """The configured keys; compares in constant time and never shows them."""

    users: tuple[bytes, ...] = attrs.field(repr=False, default=())
    admins: tuple[bytes, ...] = attrs.field(repr=False, default=())

    @classmethod
    def from_settings(cls, api_keys: Iterable[str], admin_keys: Iterable[str]) -> KeyRing:
        return cls(tuple(key.encode() for key in api_keys), tuple(key.encode() for key in admin_keys))

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.admins)

    @staticmethod
    def _matches(candidate: bytes, keys: tuple[bytes, ...]) -> bool:
        found = False
        for key in keys:  # no early exit: the time taken does not depend on which key matched
            found |= hmac.compare_digest(candidate, key)
        return found

    def role(self, key: str | None) -> str | None:
        """``admin``, ``user`` or None for a missing or unknown key."""
        if not key:
            return None
        candidate = key.encode()
        if self._matches(candidate, self.admins):
            return "admin"
        if self._matches(candidate, self.users):
            return "user"
        return None


def _needs_admin(method: str, path: str) -> bool:
    if (method, path) in ADMIN_ROUTES:
        return True
    return any(method == m and path.startswith(prefix) and path != "/v1/voices/" for m, prefix in ADMIN_PREFIXES)


def _header_key(headers: Any) -> str | None:
    """The key in ``Authorization`` (Bearer or Token) or in a vendor's key header; None when absent."""
    scheme, _, value = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() in _SCHEMES and value.strip():
        return str(value.strip())
    for name in _KEY_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return str(value.strip())
    return None


def guarded(path: str) -> bool:
    return path.startswith(GUARDED_PREFIXES)


def check_http(keys: KeyRing) -> None:
    """Before each HTTP request: enforce keys on ``/v1`` and ``/tts`` routes (CORS preflights pass)."""
    if not keys.enabled or not guarded(request.path) or request.method == "OPTIONS":
        return
    role = keys.role(_header_key(request.headers))
    if role is None:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    if role != "admin" and _needs_admin(request.method, request.path):
        raise Forbidden("this route changes the server and needs an admin key")


def websocket_key() -> str | None:
    """The key a WebSocket client sent: a key header, or the ``bearer.<key>`` subprotocol."""
    key = _header_key(websocket.headers)
    if key:
        return key
    for protocol in websocket.requested_subprotocols:
        if protocol.startswith(_BEARER_PROTOCOL):
            return protocol[len(_BEARER_PROTOCOL) :]
    return None


def check_websocket(keys: KeyRing) -> None:
    """Before each WebSocket: enforce keys (the handshake is refused with 401)."""
    if keys.enabled and guarded(websocket.path) and keys.role(websocket_key()) is None:
        raise Unauthorized("an API key is required: Authorization header or the bearer.<key> subprotocol")


def accept_subprotocol() -> str | None:
    """The subprotocol to select when the client offered ours (browsers require one be selected)."""
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in websocket.requested_subprotocols else None


@attrs.frozen
class Cors:
    """Which origins may call the API from a browser."""

    origins: tuple[str, ...] = ()

    def allow_origin(self, origin: str | None) -> str | None:
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self) -> Response | None:
        """Answer a CORS preflight, or None when this is not one."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response("", status=204)
        allowed = self.allow_origin(request.headers.get("Origin"))
        if allowed:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, xi-api-key, X-API-Key"
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    def decorate(self, response: Any) -> Any:
        allowed = self.allow_origin(request.headers.get("Origin"))
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = (
                "X-Audio-Format, X-Audio-Encoding, X-Audio-Sample-Rate, X-Audio-Sample-Width, "
                "X-Audio-Channels, X-Audio-Duration, X-Generation-Time, X-Request-Id, Retry-After"
            )
            if allowed != "*":
                response.headers.add("Vary", "Origin")
        return response
