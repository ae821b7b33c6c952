"""The Wyoming TCP listener, in the app's nursery beside Hypercorn, stopped by the drain.

:func:`start` runs from the app's ``before_serving`` hook once the service
is open, so the listener lives in the same process and nursery as the HTTP
server and shares its service: the same admission, limits and metrics.
When the server drains (SIGTERM) it stops accepting at once and each open
connection closes as soon as its work has ended; :func:`stop` (from
``after_serving``) waits for them (bounded), then cancels whatever is
left before the engines are closed.

A connection's failure is its own: a bug in a session is logged, and the
listener goes on accepting.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import trio

from tts_trio.api.state import AppState, state_of
from tts_trio.settings import DEFAULT_GRACEFUL_TIMEOUT
from tts_trio.wyoming.session import WyomingSession

log = logging.getLogger(__name__)

#: The key of ``app.extensions`` that holds the running :class:`WyomingListener`.
LISTENER_KEY = "tts_trio.wyoming"
#: accept() failures that mean "out of resources for now" (as trio.serve_listeners treats them).
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class WyomingListener:
    """Accepts Wyoming connections on ``host``:``port`` until the drain or :meth:`stop`."""

    def __init__(self, state: AppState, host: str, port: int) -> None:
        self.state = state
        self.host = host
        self.requested_port = port
        #: The bound port (the requested one, or the one picked for port 0), once started.
        self.port = 0
        self.connections = 0
        self._scope = trio.CancelScope()
        self._finished = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                listeners = await trio.open_tcp_listeners(self.requested_port, host=self.host)
                self.port = listeners[0].socket.getsockname()[1]
                log.info("Wyoming listener on %s port %d", self.host, self.port)
                async with trio.open_nursery() as connections:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept, listener, connections)
                        if self.state.settings.wyoming_zeroconf:
                            accepting.start_soon(announce, self.host, self.port)
                        task_status.started()
                        await self.state.shutdown.started.wait()
                        accepting.cancel_scope.cancel()
                    for listener in listeners:
                        await listener.aclose()
                    # The open connections close themselves once their work has ended.
        finally:
            self._finished.set()

    async def _accept(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                if error.errno not in _RESOURCE_ERRORS:
                    raise
                log.error("Wyoming listener: %s; waiting before the next accept", error.strerror)
                await trio.sleep(0.1)
                continue
            connections.start_soon(self._connection, stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            await WyomingSession(stream, self.state).run()
        except Exception:
            log.exception("a Wyoming connection failed")
        finally:
            self.connections -= 1

    async def stop(self) -> None:
        """End the listener and every connection, and wait until they have ended.

        Hypercorn's graceful wait covers only its own connections: once they
        are gone the app shuts down, which may be before a Wyoming stream
        has finished. So when the server drains, the connections get to end
        on their own (a stream still running is cut at the drain deadline and
        ends with an error event); a client that reads nothing delays that by
        ``send_timeout`` at most. Without a drain (or past that bound) what is
        left is cancelled.
        """
        if self.state.shutdown.started.is_set():
            settings = self.state.settings
            with trio.move_on_after(settings.send_timeout + (settings.graceful_timeout or DEFAULT_GRACEFUL_TIMEOUT)):
                await self._finished.wait()
        self._scope.cancel()
        await self._finished.wait()


async def start(app: Any) -> None:
    """Start the Wyoming listener in ``app.nursery`` if a port is set; it is ready to accept when this returns."""
    state = state_of(app)
    port = None if state is None else state.settings.wyoming_port
    if state is None or port is None:
        return
    settings = state.settings
    listener = WyomingListener(state, settings.wyoming_host or settings.host, port)
    nursery: trio.Nursery = app.nursery
    await nursery.start(listener.serve)
    app.extensions[LISTENER_KEY] = listener


async def stop(app: Any) -> None:
    """Stop the listener of ``app``, if it runs (after the drain this only cancels what is left)."""
    listener = app.extensions.pop(LISTENER_KEY, None)
    if isinstance(listener, WyomingListener):
        await listener.stop()


def listener_of(app: Any) -> WyomingListener | None:
    """The running listener of ``app`` (tests read its bound port), or None."""
    listener = app.extensions.get(LISTENER_KEY)
    return listener if isinstance(listener, WyomingListener) else None


def _announced_address(host: str) -> str:
    """The IPv4 address to announce: ``host`` itself, or for a wildcard the one that routes to the mDNS group."""
    if host not in ("", "0.0.0.0", "::"):
        return socket.gethostbyname(host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("224.0.0.251", 1))  # UDP: nothing is sent
        return str(probe.getsockname()[0])


async def announce(host: str, port: int) -> None:
    """Announce ``_wyoming._tcp`` over mDNS until cancelled (Home Assistant then offers to add the server).

    The ``zeroconf`` package is the optional extra; its threaded API runs
    off the event loop, so nothing asyncio runs inside trio.
    """
    try:
        from zeroconf import ServiceInfo, Zeroconf
    except ImportError:
        log.error("--wyoming-zeroconf needs the zeroconf extra: pip install 'tts-trio[zeroconf]'")
        return
    try:
        address = await trio.to_thread.run_sync(_announced_address, host)
    except OSError as error:
        log.error("could not announce the Wyoming listener over mDNS: no address for %r (%s)", host, error)
        return
    name = f"tts-trio-{socket.gethostname()}"[:60]
    info = ServiceInfo(
        "_wyoming._tcp.local.",
        f"{name}._wyoming._tcp.local.",
        addresses=[socket.inet_aton(address)],
        port=port,
    )
    try:
        zeroconf = await trio.to_thread.run_sync(Zeroconf)
    except OSError as error:  # no multicast here: the listener still serves, only undiscovered
        log.error("could not announce the Wyoming listener over mDNS: %s", error)
        return
    try:
        await trio.to_thread.run_sync(zeroconf.register_service, info)
        log.info("announced the Wyoming listener over mDNS as %s (%s:%d)", name, address, port)
        await trio.sleep_forever()
    except Exception:
        log.exception("could not announce the Wyoming listener over mDNS")
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zeroconf.close)  # unregisters what it announced
