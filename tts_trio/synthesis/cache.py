"""The phrase cache: identical requests answered from memory, in the same streaming shape.

What is cached is the pipeline's own output for one job, in order and at
the engine's format: the :class:`~tts_trio.audio.formats.AudioChunk` pieces
exactly as the engine produced them (silence from SSML included) and each
sentence's :class:`~tts_trio.synthesis.pipeline.SentenceTimings`. A hit is
replayed into the same channel a fresh synthesis would fill
(:func:`~tts_trio.synthesis.pipeline.produce_audio`), so every protocol and
every output format benefits and the encoders run as for a fresh stream.
Because PCM is cached before encoding, the output format and sample rate are
not part of the key: one entry serves WAV, MP3, Opus, PCM at any rate.

The key (:func:`cache_key`) is a digest of everything that changes the
audio: the engine's name and its pool (a number per pool object, never
reused, so however an engine is replaced its successor never hits), the
cache's generation (bumped by
:meth:`PhraseCache.clear`, which the service calls on every engine switch,
so an engine or config switch never hits an older entry, not even one a
stream on the retired engine commits late), the resolved engine voice and
its identity on disk (a custom voice's reference file: inode, size,
mtime), the text after SSML parsing (each fragment with its complete voice
parameters, each break), the job's voice parameters (speed, temperature),
``max_sentence_chars``, ``cut_first_sentence`` and the job's ``extra_key``
(for what a later stage adds, such as a lexicon's version).

An entry is committed only by a stream that completed normally: a
:class:`Recorder` collects the items while the stream runs and is
committed after the last one was sent, so a stream that was stopped,
cancelled, cut by the drain, timed out or failed leaves nothing behind.
The cache is an LRU bounded by bytes: an entry counts its PCM bytes plus
:data:`ITEM_OVERHEAD` per item and :data:`ENTRY_OVERHEAD`; one larger than
``max_bytes * entry_fraction`` (a quarter by default) is never cached, and
its recorder stops keeping items as soon as it passes that size.

Everything runs on the Trio thread, so nothing here is locked.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from tts_trio.audio.formats import AudioChunk

if TYPE_CHECKING:
    from tts_trio.synthesis.pipeline import SentenceTimings, SynthesisJob

#: What a stream was: answered from the cache, synthesized and recorded, or not cacheable.
CacheState = Literal["hit", "miss", "off"]
#: Bytes an entry is counted for besides its items (the key, the entry, the LRU links).
ENTRY_OVERHEAD = 256
#: Bytes each item is counted for besides its PCM (the object, a timing's text and words).
ITEM_OVERHEAD = 64
#: The largest entry, as a fraction of the cache's size.
DEFAULT_ENTRY_FRACTION = 0.25
#: Bumped when the key's layout changes.
_KEY_VERSION = 1


def _nothing() -> None:
    """A cache that reports to nobody (tests, tools)."""


def _item_size(item: AudioChunk | SentenceTimings) -> int:
    if isinstance(item, AudioChunk):
        return len(item.pcm) + ITEM_OVERHEAD
    return ITEM_OVERHEAD + len(item.text) + ITEM_OVERHEAD * len(item.words)


@attrs.frozen(eq=False)
class CacheEntry:
    """One stream's output, ready to replay."""

    items: tuple[AudioChunk | SentenceTimings, ...]
    #: The stream's audio length and sentence count, as the fresh stream measured them.
    audio_seconds: float
    sentences: int
    #: The voice ids the request named (and what ``default`` stood for), for :meth:`PhraseCache.invalidate_voice`.
    voice_ids: frozenset[str]
    #: Bytes the entry is counted for.
    size: int


class PhraseCache:
    """An LRU of :class:`CacheEntry` bounded by bytes; ``max_bytes`` 0 switches it off."""

    def __init__(
        self,
        max_bytes: int,
        *,
        entry_fraction: float = DEFAULT_ENTRY_FRACTION,
        on_hit: Callable[[], None] = _nothing,
        on_miss: Callable[[], None] = _nothing,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be 0 (off) or more")
        if not 0 < entry_fraction <= 1:
            raise ValueError("entry_fraction must be in (0, 1]")
        self.max_bytes = max_bytes
        #: Entries larger than this are not cached.
        self.max_entry_bytes = int(max_bytes * entry_fraction)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._by_voice: dict[str, set[str]] = {}
        self._bytes = 0
        #: Bumped by :meth:`clear`; part of every key, and a recorder started before it commits nothing.
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._on_hit = on_hit
        self._on_miss = on_miss
        #: A number for each engine pool ever looked up with, never reused (unlike ``id()``).
        self._pools: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._pool_numbers = itertools.count(1)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        """Bytes the entries are counted for now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def pool_token(self, pool: object) -> int:
        """A number that tells ``pool`` apart from every other engine pool this cache saw (part of the key).

        However an engine gets replaced (a switch, a test putting its own in
        place), a new pool never hits an entry of another.
        """
        token = self._pools.get(pool)
        if token is None:
            token = self._pools[pool] = next(self._pool_numbers)
        return token

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def lookup(self, key: str, voice_ids: Iterable[str] = ()) -> CacheLookup:
        """What a job carries: its key and, on a hit, the entry it will replay (held even if evicted later)."""
        return CacheLookup(self, key, frozenset(voice_ids), self.get(key), self.generation)

    def count(self, state: CacheState) -> None:
        """Count a stream that started as a hit or a miss (``off`` counts nowhere)."""
        if state == "hit":
            self.hits += 1
            self._on_hit()
        elif state == "miss":
            self.misses += 1
            self._on_miss()

    def put(self, key: str, entry: CacheEntry) -> bool:
        """Store ``entry`` (evicting the least recently used); False when it is too large to keep."""
        if not self.enabled or entry.size > self.max_entry_bytes:
            return False
        self._remove(key)
        self._entries[key] = entry
        self._bytes += entry.size
        for voice_id in entry.voice_ids:
            self._by_voice.setdefault(voice_id, set()).add(key)
        while self._bytes > self.max_bytes and self._entries:
            self._remove(next(iter(self._entries)))
        return True

    def recorder(self, key: str, voice_ids: Iterable[str] = (), generation: int | None = None) -> Recorder:
        """A recorder for ``key``; it commits nothing once the cache has left ``generation`` (default: now)."""
        return Recorder(self, key, frozenset(voice_ids), self.generation if generation is None else generation)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        for voice_id in entry.voice_ids:
            keys = self._by_voice.get(voice_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_voice[voice_id]

    def clear(self) -> None:
        """Drop every entry and start a new generation (an engine switch)."""
        self._entries.clear()
        self._by_voice.clear()
        self._bytes = 0
        self.generation += 1

    def invalidate_voice(self, voice_id: str) -> int:
        """Drop the entries of ``voice_id`` (deleted or changed); return how many."""
        keys = list(self._by_voice.get(voice_id, ()))
        for key in keys:
            self._remove(key)
        return len(keys)


@attrs.frozen(eq=False)
class CacheLookup:
    """A job's place in the cache, decided when the job is built (so headers can say hit or miss)."""

    cache: PhraseCache
    key: str
    voice_ids: frozenset[str]
    #: The entry a hit replays; None for a miss.
    entry: CacheEntry | None
    #: The cache's generation when the job was looked up: a miss recorded after a clear is not kept.
    generation: int

    @property
    def state(self) -> CacheState:
        return "miss" if self.entry is None else "hit"

    def recorder(self) -> Recorder:
        return self.cache.recorder(self.key, self.voice_ids, self.generation)


class Recorder:
    """Keeps what a missed stream sends; :meth:`commit` stores it once the stream completed normally."""

    def __init__(self, cache: PhraseCache, key: str, voice_ids: frozenset[str], generation: int) -> None:
        self._cache = cache
        self._key = key
        self._voice_ids = voice_ids
        self._generation = generation
        self._items: list[AudioChunk | SentenceTimings] = []
        self._size = ENTRY_OVERHEAD
        #: Set once the stream outgrew an entry: nothing more is kept.
        self.too_large = not cache.enabled

    def add(self, item: AudioChunk | SentenceTimings) -> None:
        """Keep one item the stream sent (an error ends a stream and is never kept)."""
        if self.too_large:
            return
        self._size += _item_size(item)
        if self._size > self._cache.max_entry_bytes:
            self.too_large = True
            self._items.clear()
            return
        self._items.append(item)

    def commit(self, audio_seconds: float, sentences: int) -> bool:
        """Store what was kept; False when it was too large or the cache was cleared meanwhile."""
        if self.too_large or self._generation != self._cache.generation:
            return False
        entry = CacheEntry(tuple(self._items), audio_seconds, sentences, self._voice_ids, self._size)
        self._items = []
        return self._cache.put(self._key, entry)


def _parameters(parameters: dict[str, Any]) -> Any:
    return sorted((str(name), repr(value)) for name, value in parameters.items())


def cache_key(job: SynthesisJob, *, engine: str, generation: int, voice_identity: str = "") -> str:
    """A digest of everything in ``job`` that changes its audio (see the module's docstring).

    ``voice_identity`` tells the voice on disk apart from another with the
    same id or path (for a reference file: inode, size and mtime).
    """
    from tts_trio.synthesis.pipeline import Silence

    script: Any
    if job.script is None:
        script = ["text", job.text]
    else:
        script = [
            ["break", repr(item.seconds)]
            if isinstance(item, Silence)
            else ["say", item.text, _parameters(item.voice_parameters)]
            for item in job.script
        ]
    material = [
        _KEY_VERSION,
        engine,
        generation,
        job.voice,
        voice_identity,
        _parameters(job.voice_parameters),
        job.max_sentence_chars,
        job.cut_first_sentence,
        job.extra_key,
        script,
    ]
    encoded = json.dumps(material, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.blake2b(encoded, digest_size=20).hexdigest()
