"""A subset of SSML, parsed into what the pipeline speaks: :class:`Speech` and :class:`Pause` segments.

A text is SSML when it starts with ``<speak`` (:func:`is_ssml`). Parsing is
sans-IO and safe on hostile input: defusedxml refuses DTDs, entity
declarations and external references (so no "billion laughs" and no file
reads), nesting depth and element count are bounded, and so is the silence
a document may ask for. Everything a client gets wrong is an
:class:`~tts_trio.errors.InvalidParameter` (422) on field ``text`` that names
the element and the line; with ``strict=False`` a broken document is spoken
as plain text (its markup removed) with a warning instead.

Supported (see docs/ssml.md): ``speak``, ``break`` (``time`` or
``strength``), ``p`` and ``s`` (boundaries; a short pause between
paragraphs), ``sub``, ``say-as`` (characters, spell-out, digits, cardinal,
ordinal, date, telephone), ``phoneme`` (its IPA, as a marked span of
:mod:`tts_trio.engines.phonemes`: an engine that takes IPA speaks it, any
other its text, with a warning), ``prosody rate`` and ``emphasis`` (both
change the speed of their fragment).

Segments: adjacent text at the same speed is one :class:`Speech`, so inline
elements (``sub``, ``say-as``) never break a sentence; ``s``, ``p``, a
``break`` and a change of speed end a :class:`Speech`. The sentence
splitter runs on each :class:`Speech` afterwards, in the pipeline.
"""

from __future__ import annotations

import calendar
import html
import re
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from collections.abc import Callable

import attrs
import defusedxml
import defusedxml.sax

from tts_trio.engines.phonemes import mark, unmarked
from tts_trio.errors import EmptyText, InvalidParameter
from tts_trio.synthesis import numbers

#: Deepest element nesting accepted (``speak`` is depth 1).
MAX_DEPTH = 32
#: The longest IPA in one <phoneme> (a word or a few: engines bound a word's phonemes).
MAX_PH_CHARS = 200
#: Most elements one document may hold.
MAX_ELEMENTS = 5000
#: Longest single ``break``.
MAX_BREAK_SECONDS = 10.0
#: Most silence (breaks and paragraph pauses together) one document may ask for.
MAX_TOTAL_PAUSE_SECONDS = 300.0
#: A document longer than this is refused before parsing (the request's text limit is normally far lower).
MAX_SSML_CHARS = 1_000_000

#: ``<break strength=...>`` in seconds; ``<break/>`` alone is ``medium``.
BREAK_STRENGTHS: dict[str, float] = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": 0.5,
    "strong": 0.75,
    "x-strong": 1.0,
}
#: Silence between two paragraphs (``<p>``), on top of the engine's own end-of-sentence pause.
PARAGRAPH_PAUSE = 0.5
#: ``<prosody rate=...>`` keywords as speed factors (multiplied with the request's speed).
RATES: dict[str, float] = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "fast": 1.25, "x-fast": 1.5}
#: ``rate="NN%"`` is accepted in this range.
MIN_RATE_PERCENT = 20.0
MAX_RATE_PERCENT = 400.0
#: ``<emphasis level=...>`` as speed factors: emphasis is spoken a little slower (best effort).
EMPHASIS: dict[str, float] = {"strong": 0.8, "moderate": 0.9, "none": 1.0, "reduced": 1.1}
SAY_AS = ("characters", "spell-out", "digits", "cardinal", "ordinal", "date", "telephone")
DATE_FORMATS = ("mdy", "dmy", "ymd")

#: Attributes each element takes (``xml:lang`` is accepted and ignored: the voice decides the language).
ATTRIBUTES: dict[str, frozenset[str]] = {
    "speak": frozenset({"version", "xmlns", "xml:lang"}),
    "break": frozenset({"time", "strength"}),
    "p": frozenset({"xml:lang"}),
    "s": frozenset({"xml:lang"}),
    "sub": frozenset({"alias"}),
    "say-as": frozenset({"interpret-as", "format"}),
    "phoneme": frozenset({"alphabet", "ph"}),
    "prosody": frozenset({"rate"}),
    "emphasis": frozenset({"level"}),
}
#: Elements whose content is characters only, spoken as something else.
_TEXT_ONLY = frozenset({"sub", "say-as", "phoneme"})
_SSML_START = re.compile(r"\A\s*<speak[\s>/]")
_TIME = re.compile(r"\A\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*\Z")
_PERCENT = re.compile(r"\A\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*\Z")
_CARDINAL = re.compile(r"\A([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\Z")
_ORDINAL = re.compile(r"\A(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)?\Z", re.IGNORECASE)
_SPACE_BEFORE_MARK = re.compile(r" ([,.;:!?])")
_SYMBOLS = {
    "-": "dash",
    "_": "underscore",
    ".": "dot",
    "@": "at",
    "/": "slash",
    "+": "plus",
    "#": "hash",
    "&": "and",
    "*": "star",
}


@attrs.frozen
class Speech:
    """Text to speak, at ``speed_factor`` times the request's speed."""

    text: str
    speed_factor: float = 1.0


@attrs.frozen
class Pause:
    """Silence, in seconds."""

    seconds: float


Segment = Speech | Pause


@attrs.frozen
class Document:
    """A parsed SSML text: its segments in order, and what could not be done as asked."""

    segments: tuple[Segment, ...]
    #: Short ASCII lines (a response header may carry them), e.g. a phoneme spoken as its text.
    warnings: tuple[str, ...] = ()


def is_ssml(text: str) -> bool:
    """Whether ``text`` is SSML: it starts with ``<speak`` (after leading whitespace)."""
    return _SSML_START.match(text) is not None


def parse_ssml(text: str, *, strict: bool = True) -> Document:
    """Parse an SSML document into segments.

    Raises :class:`InvalidParameter` naming the element and line when the
    document is malformed or uses what is not supported; with
    ``strict=False`` the text is spoken without its markup instead and the
    document gets a warning. Raises :class:`EmptyText` when nothing is left
    to say.
    """
    try:
        document = _parse(text)
    except EmptyText:
        raise
    except InvalidParameter as error:
        if strict:
            raise
        plain = " ".join(unmarked(html.unescape(re.sub(r"<[^>]*>?", " ", text))).split())
        warning = f"invalid SSML spoken as plain text ({_ascii(error.message.removeprefix('text: '))})"
        document = Document((Speech(plain),) if plain else (), (warning,))
    if not any(isinstance(segment, Speech) for segment in document.segments):
        raise EmptyText("text: the SSML document has nothing to say", field="text")
    return document


def _parse(text: str) -> Document:
    if len(text) > MAX_SSML_CHARS:
        raise InvalidParameter(f"text: SSML longer than {MAX_SSML_CHARS} characters", field="text")
    handler = _Handler()
    try:
        defusedxml.sax.parseString(
            text.encode("utf-8"),
            handler,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
    except xml.sax.SAXParseException as error:
        raise handler.error(_ascii(error.getMessage()), line=error.getLineNumber()) from None
    except defusedxml.DefusedXmlException:
        raise handler.error("DTDs, entity declarations and external references are not allowed") from None
    except (xml.sax.SAXException, ValueError) as error:  # anything else expat refuses
        raise handler.error(f"not well-formed XML ({type(error).__name__})") from None
    return handler.builder.document()


def _ascii(message: str) -> str:
    return message.encode("ascii", "replace").decode("ascii")


# -- building segments ----------------------------------------------------------------------
class _Builder:
    """Collects text and pauses into segments: one :class:`Speech` per run of text at one speed."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.warnings: list[str] = []
        self.pause_total = 0.0
        self._pending: list[str] = []
        self._pending_speed = 1.0
        self._has_text = False
        #: A paragraph ended: the next speech gets :data:`PARAGRAPH_PAUSE` before it.
        self._paragraph_pause = False
        #: Whether any speech was added yet (a paragraph pause goes only between speech).
        self._spoken = False
        #: A ``strength="none"`` break asked for no pause before the next speech.
        self._no_pause = False

    def text(self, text: str, speed: float) -> None:
        if not text.strip():
            if self._pending:
                self._pending.append(text)  # keeps words apart
            return
        if self._has_text and speed != self._pending_speed:
            self.boundary()
        if not self._has_text:
            self._pending_speed = speed
            self._has_text = True
        self._pending.append(text)

    def boundary(self) -> None:
        """End the speech being collected (a sentence or paragraph boundary, a pause, a speed change)."""
        # Spaces before punctuation come from the spaces put around replaced elements.
        spoken = _SPACE_BEFORE_MARK.sub(r"\1", " ".join("".join(self._pending).split()))
        self._pending = []
        self._has_text = False
        if not spoken:
            return
        if self._paragraph_pause:
            self._paragraph_pause = False
            if self._spoken:
                self._add_pause(PARAGRAPH_PAUSE, at_least=True)
        self._no_pause = False
        self._spoken = True
        self.segments.append(Speech(spoken, self._pending_speed))

    def paragraph(self) -> None:
        self.boundary()
        self._paragraph_pause = not self._no_pause

    def pause(self, seconds: float) -> bool:
        """Add a break; False when it would exceed :data:`MAX_TOTAL_PAUSE_SECONDS`."""
        self.boundary()
        if seconds <= 0:
            # strength="none": no pause where there would be one.
            self._paragraph_pause = False
            self._no_pause = True
            return True
        return self._add_pause(seconds)

    def _add_pause(self, seconds: float, *, at_least: bool = False) -> bool:
        last = self.segments[-1] if self.segments else None
        if isinstance(last, Pause):
            merged = max(last.seconds, seconds) if at_least else last.seconds + seconds
            added = merged - last.seconds
            replace = True
        else:
            merged = added = seconds
            replace = False
        if self.pause_total + added > MAX_TOTAL_PAUSE_SECONDS + 1e-9:
            return False
        self.pause_total += added
        if replace:
            self.segments[-1] = Pause(round(merged, 6))
        else:
            self.segments.append(Pause(round(merged, 6)))
        return True

    def warn(self, warning: str) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)

    def document(self) -> Document:
        self.boundary()
        return Document(tuple(self.segments), tuple(self.warnings))


@attrs.define
class _Open:
    """An element being parsed."""

    tag: str
    line: int
    attributes: dict[str, str]
    #: The speed factor inside it (all enclosing prosody and emphasis multiplied).
    speed: float
    #: Characters of a text-only element, collected until it ends.
    collected: list[str] | None = None


class _Handler(xml.sax.handler.ContentHandler):
    """SAX events to segments, checking every element and attribute as it comes."""

    def __init__(self) -> None:
        super().__init__()
        self.builder = _Builder()
        self.stack: list[_Open] = []
        self.elements = 0
        self._locator: xml.sax.xmlreader.Locator | None = None

    # -- errors -----------------------------------------------------------------------------
    def line(self) -> int | None:
        if self._locator is None:
            return None
        line = self._locator.getLineNumber()
        return line if isinstance(line, int) and line > 0 else None

    def error(self, problem: str, *, element: str | None = None, line: int | None = None) -> InvalidParameter:
        """The error for ``problem`` at ``element`` (default: the innermost open one) and ``line``."""
        if element is None and self.stack:
            element = self.stack[-1].tag
        elif element is None and self.elements:
            element = "speak"  # after the document's end
        if line is None:
            line = self.line()
        where = " ".join(part for part in (f"line {line}" if line else "", f"<{element}>" if element else "") if part)
        message = f"text: invalid SSML{' at ' + where if where else ''}: {problem}"
        details: dict[str, object] = {"field": "text"}
        if element is not None:
            details["element"] = element
        if line is not None:
            details["line"] = line
        return InvalidParameter(message, **details)

    # -- SAX --------------------------------------------------------------------------------
    def setDocumentLocator(self, locator: xml.sax.xmlreader.Locator) -> None:
        self._locator = locator

    def startElement(self, name: str, given: xml.sax.xmlreader.AttributesImpl) -> None:
        line = self.line() or 0
        tag = name
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise self.error(f"more than {MAX_ELEMENTS} elements", element=tag)
        if len(self.stack) >= MAX_DEPTH:
            raise self.error(f"elements nested deeper than {MAX_DEPTH}", element=tag)
        parent = self.stack[-1] if self.stack else None
        if tag not in ATTRIBUTES:
            raise self.error("unknown element", element=tag)
        if parent is None and tag != "speak":
            raise self.error("the document must be a <speak> element", element=tag)
        if parent is not None and tag == "speak":
            raise self.error("<speak> can only be the outermost element", element=tag)
        if parent is not None and parent.tag in _TEXT_ONLY:
            raise self.error(f"<{parent.tag}> may contain only characters, no elements", element=tag)
        enclosing = {element.tag for element in self.stack}
        if tag == "p" and enclosing & {"p", "s"}:
            raise self.error("a paragraph cannot be inside <p> or <s>", element=tag)
        if tag == "s" and "s" in enclosing:
            raise self.error("a sentence cannot be inside another <s>", element=tag)
        attributes = {key: given.getValue(key) for key in given.getNames()}
        unknown = sorted(set(attributes) - ATTRIBUTES[tag])
        if unknown:
            raise self.error(f"unknown attribute {unknown[0]!r}", element=tag)
        speed = parent.speed if parent is not None else 1.0
        opened = _Open(tag, line, attributes, speed)
        self.stack.append(opened)
        _START[tag](self, opened)

    def endElement(self, name: str) -> None:
        opened = self.stack[-1]
        _END[opened.tag](self, opened)
        self.stack.pop()

    def characters(self, content: str) -> None:
        if not self.stack:
            return
        content = unmarked(content)  # a character reference such as &#xE000; marks no phonemes
        top = self.stack[-1]
        if top.collected is not None:
            top.collected.append(content)
        else:
            self.builder.text(content, top.speed)

    # -- elements ---------------------------------------------------------------------------
    def _start_nothing(self, opened: _Open) -> None:
        pass

    def _start_boundary(self, opened: _Open) -> None:
        if opened.tag == "p":
            self.builder.paragraph()
        else:
            self.builder.boundary()

    def _end_boundary(self, opened: _Open) -> None:
        self._start_boundary(opened)

    def _start_break(self, opened: _Open) -> None:
        time = opened.attributes.get("time")
        strength = opened.attributes.get("strength")
        if strength is not None and strength not in BREAK_STRENGTHS:
            raise self.error(f"strength must be one of {', '.join(BREAK_STRENGTHS)}")
        if time is not None:  # time wins over strength when both are given
            match = _TIME.match(time)
            if match is None:
                raise self.error(f"time must be like '500ms' or '2s', not {_ascii(time[:40])!r}")
            seconds = float(match[1]) / (1000.0 if match[2] == "ms" else 1.0)
            if seconds > MAX_BREAK_SECONDS:
                raise self.error(f"time may be at most {MAX_BREAK_SECONDS:g}s")
        else:
            seconds = BREAK_STRENGTHS[strength or "medium"]
        if not self.builder.pause(seconds):
            raise self.error(f"the document asks for more than {MAX_TOTAL_PAUSE_SECONDS:g}s of pauses")

    def _end_break(self, opened: _Open) -> None:
        pass  # characters inside a break are spoken where they are (browsers and Polly do the same)

    def _start_collect(self, opened: _Open) -> None:
        opened.collected = []
        attributes = opened.attributes
        if opened.tag == "sub" and "alias" not in attributes:
            raise self.error("needs an alias attribute")
        if opened.tag == "say-as":
            kind = attributes.get("interpret-as")
            if kind is None:
                raise self.error("needs an interpret-as attribute")
            if kind not in SAY_AS:
                raise self.error(f"interpret-as must be one of {', '.join(SAY_AS)}")
            date_format = attributes.get("format")
            if date_format is not None and kind != "date":
                raise self.error("format is only for interpret-as='date'")
            if date_format is not None and date_format not in DATE_FORMATS:
                raise self.error(f"format must be one of {', '.join(DATE_FORMATS)}")
        if opened.tag == "phoneme":
            if attributes.get("alphabet", "ipa") != "ipa":
                raise self.error("alphabet must be 'ipa'")
            if not attributes.get("ph", "").strip():
                raise self.error("needs a ph attribute")
            if len(attributes["ph"]) > MAX_PH_CHARS:
                raise self.error(f"ph may have at most {MAX_PH_CHARS} characters")

    def _end_collect(self, opened: _Open) -> None:
        content = "".join(opened.collected or ())
        attributes = opened.attributes
        if opened.tag == "sub":
            spoken = unmarked(attributes["alias"])
        elif opened.tag == "say-as":
            try:
                spoken = say_as(content, attributes["interpret-as"], attributes.get("format"))
            except ValueError as error:
                raise self.error(str(error), element="say-as", line=opened.line) from None
        else:
            spoken = mark(attributes["ph"], content)
        # Spaces around the result keep it apart from the words next to it.
        self.builder.text(f" {spoken} ", opened.speed)

    def _start_prosody(self, opened: _Open) -> None:
        rate = opened.attributes.get("rate")
        if rate is None:
            raise self.error("needs a rate attribute (the only one supported)")
        if rate in RATES:
            factor = RATES[rate]
        else:
            match = _PERCENT.match(rate)
            if match is None or not MIN_RATE_PERCENT <= float(match[1]) <= MAX_RATE_PERCENT:
                raise self.error(
                    f"rate must be one of {', '.join(RATES)} or a percentage from "
                    f"{MIN_RATE_PERCENT:g}% to {MAX_RATE_PERCENT:g}%, not {_ascii(rate[:40])!r}"
                )
            factor = float(match[1]) / 100.0
        opened.speed *= factor

    def _start_emphasis(self, opened: _Open) -> None:
        level = opened.attributes.get("level", "moderate")
        if level not in EMPHASIS:
            raise self.error(f"level must be one of {', '.join(EMPHASIS)}")
        opened.speed *= EMPHASIS[level]


_Action = Callable[[_Handler, _Open], None]
_START: dict[str, _Action] = {
    "speak": _Handler._start_nothing,
    "break": _Handler._start_break,
    "p": _Handler._start_boundary,
    "s": _Handler._start_boundary,
    "sub": _Handler._start_collect,
    "say-as": _Handler._start_collect,
    "phoneme": _Handler._start_collect,
    "prosody": _Handler._start_prosody,
    "emphasis": _Handler._start_emphasis,
}
_END: dict[str, _Action] = {
    "speak": _Handler._start_nothing,
    "break": _Handler._end_break,
    "p": _Handler._end_boundary,
    "s": _Handler._end_boundary,
    "sub": _Handler._end_collect,
    "say-as": _Handler._end_collect,
    "phoneme": _Handler._end_collect,
    "prosody": _Handler._start_nothing,
    "emphasis": _Handler._start_nothing,
}


# -- say-as -----------------------------------------------------------------------------------
def say_as(text: str, kind: str, date_format: str | None = None) -> str:
    """What ``<say-as interpret-as=kind>`` speaks for ``text``; ValueError says why it cannot."""
    content = " ".join(text.split())
    if not content:
        raise ValueError(f"interpret-as='{kind}' needs something to say")
    if kind in ("characters", "spell-out"):
        return spell(content)
    if kind == "digits":
        spoken = " ".join(_character(char) for char in content if char.isalnum())
        if not spoken:
            raise ValueError("interpret-as='digits' needs digits")
        return spoken
    if kind == "cardinal":
        return _cardinal(content)
    if kind == "ordinal":
        return _ordinal(content)
    if kind == "date":
        return _date(content, date_format)
    return _telephone(content)


def spell(text: str) -> str:
    """Each letter, digit or common symbol on its own ("ABC" -> "A, B, C"): commas make engines say letters."""
    spoken = [word for word in (_character(char) for char in text) if word]
    if not spoken:
        raise ValueError("nothing to spell out")
    return ", ".join(spoken)


def _character(char: str) -> str:
    if char.isalpha():
        upper = char.upper()
        return upper if len(upper) == 1 else char
    if char.isdecimal() or char.isalnum():
        return char
    return _SYMBOLS.get(char, "")


def _cardinal(content: str) -> str:
    match = _CARDINAL.match(content.replace(" ", ""))
    if match is None:
        raise ValueError(f"interpret-as='cardinal' needs a number, not {_ascii(content[:40])!r}")
    sign, digits, fraction = match[1], match[2].replace(",", ""), match[3]
    whole = int(digits) if len(digits) <= 12 else numbers.MAX_NUMBER + 1
    # Beyond the billions: digit by digit.
    words = numbers.digits(digits) if whole > numbers.MAX_NUMBER else numbers.cardinal(whole)
    if fraction:
        words += " point " + " ".join(numbers.cardinal(int(digit)) for digit in fraction)
    return ("minus " if sign == "-" and (whole or fraction.strip("0")) else "") + words


def _ordinal(content: str) -> str:
    match = _ORDINAL.match(content.replace(" ", ""))
    if match is None:
        raise ValueError(
            f"interpret-as='ordinal' needs a whole number such as 21 or 21st, not {_ascii(content[:40])!r}"
        )
    digits = match[1].replace(",", "")
    number = int(digits) if len(digits) <= 12 else numbers.MAX_NUMBER + 1
    if number > numbers.MAX_NUMBER:
        raise ValueError(f"interpret-as='ordinal' supports numbers up to {numbers.MAX_NUMBER}")
    return numbers.ordinal(number)


def _date(content: str, date_format: str | None) -> str:
    parts = re.findall(r"\d+", content)
    if len(parts) != 3 or any(len(part) > 4 for part in parts) or re.sub(r"[\d\s./-]", "", content):
        raise ValueError(
            f"interpret-as='date' needs a date such as 2024-03-05 or 3/5/2024, not {_ascii(content[:40])!r}"
        )
    order = date_format or ("ymd" if len(parts[0]) == 4 else "mdy")
    values = dict(zip(order, map(int, parts), strict=True))
    year, month, day = values["y"], values["m"], values["d"]
    if not 1 <= month <= 12:
        raise ValueError(f"interpret-as='date': month {month} does not exist (format {order})")
    if not 1 <= day <= calendar.monthrange(year if 1 <= year <= 9999 else 2000, month)[1]:
        raise ValueError(f"interpret-as='date': day {day} does not exist in month {month} (format {order})")
    return f"{calendar.month_name[month]} {numbers.ordinal(day)}, {numbers.year(year)}"


def _telephone(content: str) -> str:
    groups = re.findall(r"[^\W_]+", content)
    if not groups:
        raise ValueError("interpret-as='telephone' needs a number")
    if len(groups) == 1 and len(groups[0]) > 4:
        digits = groups[0]
        groups = [digits[start : start + 3] for start in range(0, len(digits), 3)]
        if len(groups[-1]) == 1:  # 3-3-4 rather than 3-3-3-1
            groups[-2:] = [groups[-2] + groups[-1]]
    spoken = ", ".join(" ".join(_character(char) for char in group) for group in groups)
    return ("plus " if content.lstrip().startswith("+") else "") + spoken
