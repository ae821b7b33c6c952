"""Prometheus metrics and request ids.

Each app has its own registry (several apps in one process, as in tests,
never share counters), exposed at ``GET /metrics`` in the Prometheus text
format. Request ids: every HTTP request and WebSocket gets one (the
client's ``X-Request-Id`` when it is a sane token, else a new one), echoed
in the ``X-Request-Id`` response header and added to every log line written
while the request runs, including the tasks it starts.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def new_request_id(offered: str | None) -> str:
    """The client's id when it is a sane token (so logs can be joined), else a fresh one."""
    return offered if offered and _SANE_ID.match(offered) else secrets.token_hex(8)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (``TTS_LOG_FORMAT=json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class Metrics:
    """The server's metrics; gauges read live state through callbacks given at wiring time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tts_requests",
            "Requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "tts_time_to_first_audio_seconds",
            "From request to the first audio sent",
            ["protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.synthesis = Histogram(
            "tts_sentence_synthesis_seconds",
            "Engine time per sentence (holding a slot)",
            ["engine"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "tts_queue_wait_seconds", "Time waited for a stream place", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.cancellations = Counter(
            "tts_cancellations", "Streams ended early, by cause", ["cause"], registry=self.registry
        )
        self.engine_errors = Counter("tts_engine_errors", "Engine failures", ["engine"], registry=self.registry)
        #: A refusal sent as a message on a connection that stays open (WebSocket, Wyoming): HTTP
        #: refusals are in ``tts_requests`` by route and status, these would be counted nowhere.
        self.protocol_errors = Counter(
            "tts_protocol_errors",
            "Client errors answered as a message on an open connection, by protocol and code",
            ["protocol", "code"],
            registry=self.registry,
        )
        self.refused = Counter(
            "tts_overload_refusals", "Requests refused because the server was busy", registry=self.registry
        )
        self.cache_hits = Counter("tts_cache_hits", "Streams answered from the phrase cache", registry=self.registry)
        self.cache_misses = Counter(
            "tts_cache_misses", "Cacheable streams that were synthesized (and recorded)", registry=self.registry
        )
        self._cache_bytes = Gauge("tts_cache_bytes", "Bytes held by the phrase cache", registry=self.registry)
        self._cache_entries = Gauge("tts_cache_entries", "Entries in the phrase cache", registry=self.registry)
        self._active = Gauge("tts_active_streams", "Streams running now", registry=self.registry)
        self._slots_in_use = Gauge("tts_slots_in_use", "Engine slots busy now", registry=self.registry)
        self._slots_total = Gauge("tts_slots_total", "Engine slots of the current engine", registry=self.registry)
        self._queue_depth = Gauge("tts_queue_depth", "Requests waiting for a stream place", registry=self.registry)
        self._engine_slots = _EngineSlots()
        self.registry.register(self._engine_slots)
        #: Set to the connection cap's count by tts_trio.server.connection_limit.install (0 without it).
        self.open_connections = Gauge(
            "tts_open_connections",
            "HTTP requests and WebSockets open now (the probes not counted)",
            registry=self.registry,
        )

    def watch(
        self,
        active: Callable[[], float],
        slots_in_use: Callable[[], float],
        slots_total: Callable[[], float],
        queue_depth: Callable[[], float],
    ) -> None:
        self._active.set_function(active)
        self._slots_in_use.set_function(slots_in_use)
        self._slots_total.set_function(slots_total)
        self._queue_depth.set_function(queue_depth)

    def watch_engines(self, slots: Callable[[], Mapping[str, tuple[int, int, int]]]) -> None:
        """Per resident engine: slots total, in use and waited for (``tts_engine_slots_*{engine}``).

        ``slots()`` maps each resident engine's name to ``(total, in_use, waiting)``;
        it is read at every scrape, so engines loaded or switched later show up.
        """
        self._engine_slots.slots = slots

    def watch_cache(self, size: Callable[[], float], entries: Callable[[], float]) -> None:
        self._cache_bytes.set_function(size)
        self._cache_entries.set_function(entries)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _EngineSlots(Collector):
    """The slots of every resident engine, labelled by engine, computed when scraped."""

    def __init__(self) -> None:
        #: Read at each scrape; nothing until a service watches (a second service replaces the first's).
        self.slots: Callable[[], Mapping[str, tuple[int, int, int]]] = dict

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families({}))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(self.slots())

    @staticmethod
    def _families(slots: Mapping[str, tuple[int, int, int]]) -> Iterator[GaugeMetricFamily]:
        names = (
            ("tts_engine_slots_total", "Synthesis slots of each resident engine"),
            ("tts_engine_slots_in_use", "Slots of each resident engine busy now"),
            ("tts_engine_slots_waiting", "Sentences waiting for a slot of each resident engine"),
        )
        for index, (name, text) in enumerate(names):
            family = GaugeMetricFamily(name, text, labels=["engine"])
            for engine, values in sorted(slots.items()):
                family.add_metric([engine], values[index])
            yield family
