"""The pronunciation lexicon: words the engine should say differently, shared by every replica.

An entry maps a word (or several: ``New York``) to a spoken form
(``{"spoken": "noo york"}``) or to phonemes in IPA (``{"phonemes":
"njuː jɔːk"}``). It lives in ``lexicon.json`` next to the voices (the voice
store's directory, which replicas share), and the disk is the only truth:

* Writes are atomic: the whole lexicon is written into a hidden
  ``.tmp-lexicon-*`` file in the same directory, fsynced and renamed over
  ``lexicon.json`` (:func:`os.replace`), so a reader sees the old lexicon
  or the new one, never half of one; a crash leaves at most a stale
  ``.tmp-*`` file, which :meth:`VoiceStore.open` clears.
* A change (set, delete, import) reads the file, changes it and writes it
  holding the lock ``.lexicon.lockdir`` (:mod:`tts_trio.voices.exclusive`:
  taken with an atomic directory rename, no ``flock``, which shared volumes
  do not all keep), so two replicas on one directory do not lose each
  other's changes.
* Reads look at the file's inode, mtime and size (one ``stat``) and parse it
  again only when one of them changed: another replica's change is seen by
  the next use.
* A full or read-only disk answers like the voice store does
  (:func:`tts_trio.voices.store.store_error`): 507 ``insufficient_storage``
  or 503 ``store_read_only``, the lexicon left as it was.

Matching (:meth:`LexiconSnapshot.apply`), the rules:

* Whole words only. Text and entries are cut into tokens, each a run of
  word characters (Unicode ``\\w``) or one other non-space character, and an
  entry matches a run of the text's tokens: "cat" does not change
  "category", and "C++" matches in "I write C++." Where an entry has a space
  between two tokens the text needs some whitespace there (any amount, a
  line break too); where it has none the text must have none. The match
  must not be preceded or followed by a word character (".NET" does not
  match inside "ASP.NET").
* Case-insensitive (Unicode case folding) unless the entry says
  ``case_sensitive``: then only that exact spelling matches ("US" but not
  "us"). A case-sensitive entry and a case-insensitive one for the same
  word may both exist; where both match, the case-sensitive one wins.
* Leftmost, then longest: the text is read from the start, and at each
  position the longest entry that matches there wins ("New York City"
  before "New York" before "New"); the replaced text is not looked at again.

Limits: :data:`MAX_ENTRIES` entries, words up to :data:`MAX_WORD_CHARS`
characters, spoken forms and phonemes up to :data:`MAX_SPOKEN_CHARS`. A
word may not start with ``#`` (a TSV comment), a spoken form may not start
with ``/`` (TSV's mark for phonemes), phonemes hold no ``/``; none holds a
control character (tab and line break included).

TSV (import and export), UTF-8, one entry a line: ``word<TAB>spoken`` or
``word<TAB>/ipa/``, and an optional third column ``case_sensitive``; lines
whose first non-blank character is ``#`` are comments, blank lines are
skipped, spaces around a field are ignored, and where a word appears twice
the later line wins. An import is all or nothing: the first bad line is a 422
``lexicon_import_invalid`` that names its number (``line``).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs

from tts_trio.errors import (
    LexiconEntryInvalid,
    LexiconEntryNotFound,
    LexiconFull,
    LexiconImportInvalid,
    StoreBusy,
)
from tts_trio.voices.durable import fsync_dir
from tts_trio.voices.exclusive import LockTimeout, held
from tts_trio.voices.store import store_error

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
MAX_WORD_CHARS = 100
MAX_SPOKEN_CHARS = 400
FILE_NAME = "lexicon.json"
#: A directory (tts_trio.voices.exclusive). Not ``.lexicon.lock``: versions before it flock a file of that name.
LOCK_NAME = ".lexicon.lockdir"
#: The third TSV column that marks a case-sensitive entry.
CASE_SENSITIVE_FLAG = "case_sensitive"
TSV_MEDIA_TYPE = "text/tab-separated-values"

# -- The rules as regular expressions: the server checks with them and the API description publishes them.
_CONTROL = r"\x00-\x1f\x7f"


def _core(first: str, inner: str, last: str, max_chars: int) -> str:
    """One to ``max_chars`` characters: a ``first``, then ``inner`` ones, then a ``last`` (the character classes)."""
    return f"[{first}](?:[{inner}]{{0,{max_chars - 2}}}[{last}])?"


#: A word as stored: no blank at either end, no control character, not starting with ``#``.
WORD_CORE = _core(rf"^\s#{_CONTROL}", f"^{_CONTROL}", rf"^\s{_CONTROL}", MAX_WORD_CHARS)
#: A spoken form as stored: as a word, but it may start with ``#`` and not with ``/``.
SPOKEN_CORE = _core(rf"^\s/{_CONTROL}", f"^{_CONTROL}", rf"^\s{_CONTROL}", MAX_SPOKEN_CHARS)
#: Phonemes (IPA) as stored: no ``/`` anywhere (TSV puts them between slashes).
PHONEMES_CORE = _core(rf"^\s/{_CONTROL}", f"^/{_CONTROL}", rf"^\s/{_CONTROL}", MAX_SPOKEN_CHARS)
#: A word, spoken form or phonemes in JSON or a path: the core with any whitespace around it.
WORD_PATTERN = rf"^\s*{WORD_CORE}\s*$"
SPOKEN_PATTERN = rf"^\s*{SPOKEN_CORE}\s*$"
PHONEMES_PATTERN = rf"^\s*{PHONEMES_CORE}\s*$"
_TSV_ENTRY = (
    rf"[ ]*{WORD_CORE}[ ]*\t[ ]*(?:{SPOKEN_CORE}|/{PHONEMES_CORE}/)[ ]*(?:\t[ ]*(?:{CASE_SENSITIVE_FLAG})?[ ]*)?"
)
_TSV_LINE = rf"(?:[ \t]*|[ \t]*#[^\n]*|{_TSV_ENTRY})"
#: A whole TSV body (an optional byte-order mark, then lines); the entry count is checked besides.
TSV_PATTERN = rf"^\ufeff?(?:{_TSV_LINE}\r?\n)*(?:{_TSV_LINE}\r?)?$"

_WORD_RE = re.compile(WORD_PATTERN)
_SPOKEN_RE = re.compile(SPOKEN_PATTERN)
_PHONEMES_RE = re.compile(PHONEMES_PATTERN)
_WORD_CORE_RE = re.compile(WORD_CORE)
_SPOKEN_CORE_RE = re.compile(SPOKEN_CORE)
_PHONEMES_CORE_RE = re.compile(PHONEMES_CORE)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD_CHAR = re.compile(r"\w")

Kind = Literal["spoken", "phonemes"]
#: Turns IPA into the engine's inline phoneme markup; None: this engine cannot speak that IPA.
PhonemeMarkup = Callable[[str], str | None]


def _normalize(word: str) -> str:
    """Runs of whitespace inside a word become one space (matching treats any amount alike)."""
    return " ".join(word.split())


@attrs.frozen
class Entry:
    """One lexicon entry; build it with :meth:`create` (checked) or read it with :meth:`from_dict`."""

    word: str
    kind: Kind
    #: The spoken form, or the IPA.
    value: str
    case_sensitive: bool = False

    @property
    def key(self) -> tuple[bool, str]:
        """What identifies an entry: a case-sensitive one by its spelling, another by its case-folded word."""
        return (self.case_sensitive, self.word if self.case_sensitive else self.word.casefold())

    @classmethod
    def create(
        cls,
        word: Any,
        *,
        spoken: Any = None,
        phonemes: Any = None,
        case_sensitive: Any = False,
    ) -> Entry:
        """A checked entry from what a client sent (whitespace around each part is dropped); 422 otherwise."""
        clean = check_word(word)
        if (spoken is None) == (phonemes is None):
            raise LexiconEntryInvalid("give exactly one of spoken or phonemes", field="spoken")
        if not isinstance(case_sensitive, bool):
            raise LexiconEntryInvalid("case_sensitive: must be true or false", field="case_sensitive")
        if spoken is not None:
            return cls(clean, "spoken", _check(spoken, "spoken", _SPOKEN_RE, _SPOKEN_RULE), case_sensitive)
        return cls(clean, "phonemes", _check(phonemes, "phonemes", _PHONEMES_RE, _PHONEMES_RULE), case_sensitive)

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, self.kind: self.value, "case_sensitive": self.case_sensitive}

    @classmethod
    def from_dict(cls, data: Any) -> Entry:
        if not isinstance(data, dict) or not set(data) <= {"word", "spoken", "phonemes", "case_sensitive"}:
            raise LexiconEntryInvalid("an entry is an object with word, spoken or phonemes, and case_sensitive")
        return cls.create(
            data.get("word"),
            spoken=data.get("spoken"),
            phonemes=data.get("phonemes"),
            case_sensitive=data.get("case_sensitive", False),
        )

    def to_tsv(self) -> str:
        value = f"/{self.value}/" if self.kind == "phonemes" else self.value
        return f"{self.word}\t{value}" + (f"\t{CASE_SENSITIVE_FLAG}" if self.case_sensitive else "")


_WORD_RULE = f"1 to {MAX_WORD_CHARS} characters, no control characters, not starting with #"
_SPOKEN_RULE = f"1 to {MAX_SPOKEN_CHARS} characters, no control characters, not starting with /"
_PHONEMES_RULE = f"1 to {MAX_SPOKEN_CHARS} characters of IPA, no control characters and no /"


def _check(value: Any, field: str, pattern: re.Pattern[str], rule: str) -> str:
    limit = MAX_WORD_CHARS if field == "word" else MAX_SPOKEN_CHARS
    if not isinstance(value, str) or len(value) > limit or not pattern.search(value):
        raise LexiconEntryInvalid(f"{field}: {rule}", field=field)
    return _normalize(value) if field == "word" else value.strip()


def check_word(word: Any) -> str:
    """The word as stored (trimmed, inner whitespace one space), or 422 ``lexicon_entry_invalid``."""
    return _check(word, "word", _WORD_RE, _WORD_RULE)


# -- Matching ------------------------------------------------------------------------------------
@attrs.frozen
class Replacement:
    """One match: ``source`` (start, end) in the original text became ``target`` (start, end) in the new one."""

    source: tuple[int, int]
    target: tuple[int, int]
    #: The entry that matched (its word as stored).
    word: str
    kind: Kind


@attrs.frozen
class Applied:
    """What :meth:`LexiconSnapshot.apply` made of a text, and how to find the original words again.

    ``replacements`` are in text order and do not overlap; everything
    between them was copied unchanged, so a position outside every target
    maps back by a plain shift. ``warnings`` name the entries that matched
    but were left as written (phonemes, with no markup for the engine).
    """

    original: str
    text: str
    replacements: tuple[Replacement, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.replacements)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` was spoken for.

        A span that touches a replacement's inside grows to that
        replacement's whole source: both "United" and "States" (spoken for
        "US") map to the span of "US". Elsewhere positions are shifted by
        what the replacements before them added or removed.
        """
        if start > end:
            raise ValueError("start is after end")
        return self._map(start, left=True), self._map(end, left=False)

    def _map(self, position: int, *, left: bool) -> int:
        ends = [replacement.target[1] for replacement in self.replacements]
        index = bisect.bisect_left(ends, position)  # the first replacement whose target ends at or after it
        if index < len(self.replacements):
            replacement = self.replacements[index]
            (target_start, target_end), (source_start, source_end) = replacement.target, replacement.source
            if target_start <= position:
                if position == target_start != target_end:
                    return source_start
                if position == target_end != target_start:
                    return source_end
                return source_start if left else source_end
        if index == 0:
            return min(position, len(self.original))
        before = self.replacements[index - 1]
        return min(position - before.target[1] + before.source[1], len(self.original))


@attrs.frozen
class _Compiled:
    entry: Entry
    tokens: tuple[str, ...]
    #: For each token after the first: whether the word has whitespace before it.
    spaced: tuple[bool, ...]


def _compile(entry: Entry) -> _Compiled:
    matches = list(_TOKEN.finditer(entry.word))
    tokens = tuple(m.group() if entry.case_sensitive else m.group().casefold() for m in matches)
    spaced = tuple(matches[i].start() > matches[i - 1].end() for i in range(1, len(matches)))
    return _Compiled(entry, tokens, spaced)


class LexiconSnapshot:
    """The lexicon at one moment: immutable, and :meth:`apply` is pure (no I/O, no state)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        by_key: dict[tuple[bool, str], Entry] = {}
        for entry in entries:
            by_key[entry.key] = entry  # a later entry for the same word wins
        self.entries: tuple[Entry, ...] = tuple(sorted(by_key.values(), key=_sort_key))
        index: dict[str, list[_Compiled]] = {}
        for entry in self.entries:
            compiled = _compile(entry)
            if compiled.tokens:
                index.setdefault(compiled.tokens[0].casefold(), []).append(compiled)
        for candidates in index.values():
            # Longest first; for the same word the case-sensitive entry first.
            candidates.sort(key=lambda c: (-len(c.tokens), -len(c.entry.word), not c.entry.case_sensitive))
        self._index = index

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, text: str, phonemes: PhonemeMarkup | None = None) -> Applied:
        """Replace the lexicon's words in ``text`` (see the module's rules); pure, so safe anywhere.

        ``phonemes`` turns an entry's IPA into the engine's inline phoneme
        markup; without it (an engine that takes no phonemes) a phoneme
        entry's word is left as written and named in ``warnings``. The
        result's :meth:`Applied.original_span` maps spans of the new text
        (word timings) back to the original.
        """
        if not self._index:
            return Applied(text, text)
        tokens = list(_TOKEN.finditer(text))
        folded = [token.group().casefold() for token in tokens]
        pieces: list[str] = []
        replacements: list[Replacement] = []
        warnings: dict[str, None] = {}
        copied = 0  # the original text up to here is accounted for
        length = 0  # of the new text so far
        i = 0
        while i < len(tokens):
            found = self._match(text, tokens, folded, i)
            if found is None:
                i += 1
                continue
            compiled, count = found
            entry = compiled.entry
            start, end = tokens[i].start(), tokens[i + count - 1].end()
            if entry.kind == "spoken":
                spoken: str | None = entry.value
            elif phonemes is not None:
                spoken = phonemes(entry.value)
                if spoken is None:
                    warnings[f"{entry.word!r} has phonemes that this engine cannot speak: it is read as written"] = None
            else:
                spoken = None
                warnings[f"{entry.word!r} has phonemes, which this engine cannot take: it is read as written"] = None
            i += count
            if spoken is None:
                continue
            pieces.append(text[copied:start])
            length += start - copied
            pieces.append(spoken)
            replacements.append(Replacement((start, end), (length, length + len(spoken)), entry.word, entry.kind))
            length += len(spoken)
            copied = end
        pieces.append(text[copied:])
        return Applied(text, "".join(pieces), tuple(replacements), tuple(warnings))

    def _match(self, text: str, tokens: list[re.Match[str]], folded: list[str], i: int) -> tuple[_Compiled, int] | None:
        for compiled in self._index.get(folded[i], ()):
            count = len(compiled.tokens)
            if i + count > len(tokens):
                continue
            exact = compiled.entry.case_sensitive
            if any(
                (tokens[i + j].group() if exact else folded[i + j]) != compiled.tokens[j]
                or (j > 0 and (tokens[i + j].start() > tokens[i + j - 1].end()) != compiled.spaced[j - 1])
                for j in range(count)
            ):
                continue
            start, end = tokens[i].start(), tokens[i + count - 1].end()
            if start > 0 and _WORD_CHAR.match(text, start - 1):
                continue
            if end < len(text) and _WORD_CHAR.match(text, end):
                continue
            return compiled, count
        return None

    def to_tsv(self) -> str:
        """The lexicon as TSV that :func:`parse_tsv` reads back to the same entries."""
        header = "# tts-trio pronunciation lexicon: word<TAB>spoken, or word<TAB>/ipa/; a third column case_sensitive\n"
        return header + "".join(entry.to_tsv() + "\n" for entry in self.entries)


def _sort_key(entry: Entry) -> tuple[str, bool, str]:
    return (entry.word.casefold(), entry.case_sensitive, entry.word)


# -- TSV -----------------------------------------------------------------------------------------
def parse_tsv(data: bytes | str, *, max_entries: int = MAX_ENTRIES) -> list[Entry]:
    """The entries of a TSV body (see the module's rules); 422 ``lexicon_import_invalid`` naming the first bad line."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _bad_line(data[: error.start].count(b"\n") + 1, "is not UTF-8") from None
    else:
        text = data
    entries: dict[tuple[bool, str], Entry] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = raw.removesuffix("\r")
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise _bad_line(number, "needs word<TAB>spoken or word<TAB>/ipa/ (and optionally <TAB>case_sensitive)")
        word, value = fields[0].strip(" "), fields[1].strip(" ")
        flag = fields[2].strip(" ") if len(fields) == 3 else ""
        if not _WORD_CORE_RE.fullmatch(word):
            raise _bad_line(number, f"word: {_WORD_RULE}")
        if flag not in ("", CASE_SENSITIVE_FLAG):
            raise _bad_line(number, f"the third column is empty or {CASE_SENSITIVE_FLAG}, not {flag[:40]!r}")
        if value.startswith("/"):
            if not (len(value) >= 3 and value.endswith("/") and _PHONEMES_CORE_RE.fullmatch(value[1:-1])):
                raise _bad_line(number, f"phonemes go between slashes (/ipa/): {_PHONEMES_RULE}")
            entry = Entry(_normalize(word), "phonemes", value[1:-1], flag == CASE_SENSITIVE_FLAG)
        else:
            if not _SPOKEN_CORE_RE.fullmatch(value):
                raise _bad_line(number, f"spoken: {_SPOKEN_RULE}")
            entry = Entry(_normalize(word), "spoken", value, flag == CASE_SENSITIVE_FLAG)
        entries.pop(entry.key, None)  # a later line for the same word wins
        entries[entry.key] = entry
        if len(entries) > max_entries:
            raise _bad_line(number, f"is one entry too many: a lexicon holds at most {max_entries}")
    return list(entries.values())


def _bad_line(number: int, problem: str) -> LexiconImportInvalid:
    return LexiconImportInvalid(f"line {number} {problem}; nothing was imported", line=number)


# -- The file ------------------------------------------------------------------------------------
T = TypeVar("T")
_EMPTY = LexiconSnapshot()


class Lexicon:
    """The lexicon file in the voice store's directory; every method is blocking file I/O (call from a thread).

    :meth:`snapshot` is cheap when nothing changed (one ``stat``); the
    pipeline takes a snapshot per request and applies it
    (:meth:`LexiconSnapshot.apply`, pure).
    """

    def __init__(self, root: Path, *, max_entries: int = MAX_ENTRIES) -> None:
        self.root = root
        self.path = root / FILE_NAME
        self.max_entries = max_entries
        self._cache: tuple[tuple[int, int, int], LexiconSnapshot] | None = None
        self._lock = threading.Lock()

    # Reading.
    def snapshot(self) -> LexiconSnapshot:
        """The lexicon as the disk has it now (parsed again only when the file changed)."""
        try:
            signature = _signature(os.stat(self.path))
        except FileNotFoundError:
            return _EMPTY
        except OSError as error:
            log.warning("lexicon: cannot read %s: %s", FILE_NAME, os.strerror(error.errno or 0))
            return self._cache[1] if self._cache else _EMPTY
        cached = self._cache
        if cached is not None and cached[0] == signature:
            return cached[1]
        signature, snapshot = self._read()
        self._cache = (signature, snapshot)
        return snapshot

    def _read(self) -> tuple[tuple[int, int, int], LexiconSnapshot]:
        try:
            with open(self.path, "rb") as handle:
                signature = _signature(os.fstat(handle.fileno()))
                data = handle.read()
        except FileNotFoundError:
            return (0, 0, 0), _EMPTY
        try:
            stored = json.loads(data)
            items = stored["entries"]
            if not isinstance(items, list):
                raise TypeError("entries is not a list")
        except (ValueError, KeyError, TypeError) as error:
            log.warning("lexicon: %s is not a lexicon (%s); using none", FILE_NAME, error)
            return signature, _EMPTY
        entries = []
        for number, item in enumerate(items):
            try:
                entries.append(Entry.from_dict(item))
            except LexiconEntryInvalid as error:
                log.warning("lexicon: skipping entry %d of %s: %s", number, FILE_NAME, error.message)
        return signature, LexiconSnapshot(entries)

    def entries(self) -> tuple[Entry, ...]:
        return self.snapshot().entries

    def apply(self, text: str, phonemes: PhonemeMarkup | None = None) -> Applied:
        """:meth:`snapshot` then :meth:`LexiconSnapshot.apply` (reads the disk: call from a thread)."""
        return self.snapshot().apply(text, phonemes)

    def to_tsv(self) -> str:
        return self.snapshot().to_tsv()

    # Writing.
    def set(self, entry: Entry) -> Entry:
        """Add ``entry`` or replace the one for the same word; 409 ``lexicon_full`` at the limit."""

        def change(entries: dict[tuple[bool, str], Entry]) -> Entry:
            if entry.key not in entries and len(entries) >= self.max_entries:
                raise LexiconFull(
                    f"the lexicon holds its limit of {self.max_entries} entries; delete some first",
                    limit=self.max_entries,
                )
            entries[entry.key] = entry
            return entry

        return self._change("save the lexicon", change)

    def delete(self, word: str) -> Entry:
        """Remove the case-sensitive entry spelled ``word`` or else the case-insensitive one; 404 when neither."""
        clean = check_word(word)

        def change(entries: dict[tuple[bool, str], Entry]) -> Entry:
            for key in ((True, clean), (False, clean.casefold())):
                if key in entries:
                    return entries.pop(key)
            raise LexiconEntryNotFound(f"the lexicon has no entry {clean!r}", field="word")

        return self._change("save the lexicon", change)

    def replace(self, entries: Iterable[Entry]) -> int:
        """Make ``entries`` the whole lexicon (an import); the number of entries."""
        new = LexiconSnapshot(entries).entries
        if len(new) > self.max_entries:
            raise LexiconFull(f"a lexicon holds at most {self.max_entries} entries", limit=self.max_entries)

        def change(current: dict[tuple[bool, str], Entry]) -> int:
            current.clear()
            current.update((entry.key, entry) for entry in new)
            return len(new)

        return self._change("import the lexicon", change)

    def _change(self, action: str, change: Callable[[dict[tuple[bool, str], Entry]], T]) -> T:
        with self._lock, _writing(action), self._file_lock():
            _, current = self._read()  # under the lock, from the disk: another replica may have written
            entries = {entry.key: entry for entry in current.entries}
            result = change(entries)
            self._write(LexiconSnapshot(entries.values()).entries)
        return result

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with held(self.root, LOCK_NAME):
            yield

    def _write(self, entries: tuple[Entry, ...]) -> None:
        data = json.dumps({"version": 1, "entries": [entry.to_dict() for entry in entries]}, ensure_ascii=False)
        staging = self.root / f".tmp-lexicon-{secrets.token_hex(4)}"
        try:
            with open(staging, "wb") as handle:
                handle.write(data.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
            raise
        fsync_dir(self.root)


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@contextlib.contextmanager
def _writing(action: str) -> Iterator[None]:
    """A full or read-only disk becomes its answer (507 / 503), as for voices; other errors pass."""
    try:
        yield
    except LockTimeout as error:
        raise StoreBusy(f"could not {action}: another replica is changing the lexicon; retry", retry_after=1) from error
    except OSError as error:
        answer = store_error(error, action)
        if answer is None:
            raise
        log.warning("lexicon: could not %s: %s", action, os.strerror(error.errno or errno.EIO))
        raise answer from error
