"""The Wyoming protocol (Home Assistant's voice pipeline) over a trio TCP listener.

The ``wyoming`` package is the reference implementation of the protocol,
but its I/O helpers are asyncio; this server is trio. Only its pure parts
are used (the event types and their ``event()`` / ``from_event()``), and
the framing is written here over a trio stream, with bounds on every size
a client controls (:mod:`.framing`). :mod:`.info` answers ``describe``,
:mod:`.session` is one connection, :mod:`.listener` accepts them in the
app's nursery and stops with the server's drain. See docs/wyoming.md.
"""
