"""The SSML subset: every element, errors that name element and line, hostile XML refused, a fuzz test."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts_trio.engines import phonemes
from tts_trio.errors import ApiError, EmptyText, InvalidParameter
from tts_trio.synthesis import numbers
from tts_trio.synthesis.ssml import (
    BREAK_STRENGTHS,
    MAX_DEPTH,
    MAX_ELEMENTS,
    PARAGRAPH_PAUSE,
    Document,
    Pause,
    Speech,
    is_ssml,
    parse_ssml,
    say_as,
)


def segments(text: str) -> tuple[Speech | Pause, ...]:
    return parse_ssml(text).segments


def refused(text: str) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        parse_ssml(text)
    return caught.value


# -- detection -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<speak>Hi</speak>", True),
        ("  \n<speak>Hi</speak>", True),
        ('<speak version="1.1" xml:lang="en-US">Hi</speak>', True),
        ("<speak/>", True),
        ("Hello <speak>", False),
        ("<speaker>Hi</speaker>", False),
        ("<p>Hi</p>", False),
        ("plain text", False),
    ],
)
def test_only_a_text_that_starts_with_speak_is_ssml(text: str, expected: bool) -> None:
    assert is_ssml(text) is expected


# -- elements ---------------------------------------------------------------------------------------
def test_speak_alone_is_one_speech() -> None:
    assert segments("<speak>Hello   there,\n world.</speak>") == (Speech("Hello there, world."),)


def test_speak_takes_version_namespace_and_lang() -> None:
    text = '<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">Hi.</speak>'
    assert segments(text) == (Speech("Hi."),)


@pytest.mark.parametrize(
    ("time", "seconds"), [("500ms", 0.5), ("2s", 2.0), ("1.5s", 1.5), ("0ms", 0), ("250 ms", 0.25)]
)
def test_break_time(time: str, seconds: float) -> None:
    expected = (Speech("One."), Pause(seconds), Speech("Two.")) if seconds else (Speech("One."), Speech("Two."))
    assert segments(f'<speak>One.<break time="{time}"/>Two.</speak>') == expected


@pytest.mark.parametrize("strength", list(BREAK_STRENGTHS))
def test_break_strength(strength: str) -> None:
    seconds = BREAK_STRENGTHS[strength]
    found = segments(f'<speak>One.<break strength="{strength}"/>Two.</speak>')
    assert found == ((Speech("One."), Pause(seconds), Speech("Two.")) if seconds else (Speech("One."), Speech("Two.")))


def test_break_durations_grow_with_strength() -> None:
    durations = list(BREAK_STRENGTHS.values())
    assert durations == sorted(durations)
    assert BREAK_STRENGTHS["none"] == 0


def test_a_bare_break_is_medium_and_time_wins_over_strength() -> None:
    assert segments("<speak>A<break/>B</speak>")[1] == Pause(BREAK_STRENGTHS["medium"])
    assert segments('<speak>A<break time="3s" strength="weak"/>B</speak>')[1] == Pause(3.0)


def test_breaks_in_a_row_add_up_and_may_lead_or_trail() -> None:
    found = segments('<speak><break time="1s"/>A<break time="1s"/><break time="500ms"/>B<break time="2s"/></speak>')
    assert found == (Pause(1.0), Speech("A"), Pause(1.5), Speech("B"), Pause(2.0))


def test_a_break_inside_a_sentence_splits_it_there() -> None:
    assert segments('<speak>Wait <break time="300ms"/> for it.</speak>') == (
        Speech("Wait"),
        Pause(0.3),
        Speech("for it."),
    )


def test_paragraphs_get_a_pause_between_them_only() -> None:
    found = segments("<speak><p>First one. Still first.</p><p>Second.</p>\n<p>Third.</p></speak>")
    assert found == (
        Speech("First one. Still first."),
        Pause(PARAGRAPH_PAUSE),
        Speech("Second."),
        Pause(PARAGRAPH_PAUSE),
        Speech("Third."),
    )


def test_a_paragraph_pause_merges_with_a_break_and_strength_none_removes_it() -> None:
    assert segments('<speak><p>A</p><break time="2s"/><p>B</p></speak>') == (Speech("A"), Pause(2.0), Speech("B"))
    assert segments('<speak><p>A</p><break time="100ms"/><p>B</p></speak>') == (
        Speech("A"),
        Pause(PARAGRAPH_PAUSE),
        Speech("B"),
    )
    assert segments('<speak><p>A</p><break strength="none"/><p>B</p></speak>') == (Speech("A"), Speech("B"))


def test_sentences_are_boundaries_without_a_pause() -> None:
    assert segments("<speak><s>No full stop here</s><s>nor here</s> tail</speak>") == (
        Speech("No full stop here"),
        Speech("nor here"),
        Speech("tail"),
    )
    assert segments("<speak><p><s>One</s><s>Two</s></p></speak>") == (Speech("One"), Speech("Two"))


def test_sub_speaks_its_alias_inside_the_sentence() -> None:
    assert segments('<speak>The <sub alias="World Wide Web">WWW</sub> is big.</speak>') == (
        Speech("The World Wide Web is big."),
    )


def test_phoneme_becomes_a_marked_span_with_its_ipa_and_its_text() -> None:
    document = parse_ssml('<speak>A\n<phoneme alphabet="ipa" ph=" təˈmeɪtoʊ ">tomato</phoneme>.</speak>')
    (speech,) = document.segments
    assert isinstance(speech, Speech)
    assert phonemes.parts(speech.text) == [("A ", False), ("təˈmeɪtoʊ", True), (".", False)]
    assert phonemes.written(speech.text) == "A tomato."
    assert document.warnings == ()  # whether it is spoken as IPA is the engine's business (the service warns)


@pytest.mark.parametrize(
    "text",
    [
        "<speak>A \ue000ʃ\ue001x\ue002 b.</speak>",
        "<speak>A &#xE000;ʃ&#xE001;x&#xE002; b.</speak>",
        "<speak>A &#xE000;ʃ&#xE001;x&#xE002; b.<unknown/></speak>",  # spoken as plain text (not strict)
        '<speak>A <sub alias="&#xE000;ʃ&#xE001;x&#xE002;">b</sub>.</speak>',
    ],
)
def test_marks_sent_in_a_document_are_never_spans(text: str) -> None:
    document = parse_ssml(text, strict=False)
    assert not any(phonemes.has_spans(getattr(segment, "text", "")) for segment in document.segments)


def test_prosody_rate_sets_the_speed_of_its_fragment() -> None:
    found = segments('<speak>Normal <prosody rate="x-slow">slow</prosody> normal.</speak>')
    assert found == (Speech("Normal"), Speech("slow", 0.5), Speech("normal."))


@pytest.mark.parametrize(
    ("rate", "factor"),
    [("x-slow", 0.5), ("slow", 0.75), ("medium", 1.0), ("fast", 1.25), ("x-fast", 1.5), ("80%", 0.8), ("150%", 1.5)],
)
def test_prosody_rates(rate: str, factor: float) -> None:
    assert segments(f'<speak><prosody rate="{rate}">Words.</prosody></speak>') == (Speech("Words.", factor),)


def test_nested_rates_multiply() -> None:
    found = segments('<speak><prosody rate="x-slow">a <prosody rate="200%">b</prosody></prosody></speak>')
    assert found == (Speech("a", 0.5), Speech("b", 1.0))


def test_emphasis_is_a_little_slower_and_reduced_a_little_faster() -> None:
    assert segments("<speak><emphasis>Yes.</emphasis></speak>") == (Speech("Yes.", 0.9),)
    assert segments('<speak><emphasis level="strong">Yes.</emphasis></speak>') == (Speech("Yes.", 0.8),)
    assert segments('<speak><emphasis level="reduced">Yes.</emphasis></speak>') == (Speech("Yes.", 1.1),)
    assert segments('<speak><emphasis level="none">Yes.</emphasis></speak>') == (Speech("Yes."),)


def test_entities_and_cdata_are_text() -> None:
    assert segments("<speak>Fish &amp; chips &lt;3 &#65;<![CDATA[ & <more>]]></speak>") == (
        Speech("Fish & chips <3 A & <more>"),
    )


def test_comments_and_processing_instructions_are_not_spoken() -> None:
    assert segments("<speak>A<!-- not this --> B<?pi x?></speak>") == (Speech("A B"),)


# -- say-as -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "content", "spoken"),
    [
        ("characters", "ABC", "A, B, C"),
        ("characters", "a1-b", "A, 1, dash, B"),
        ("spell-out", "Hi!", "H, I"),
        ("digits", "1234", "1 2 3 4"),
        ("digits", "12 34", "1 2 3 4"),
        ("cardinal", "0", "zero"),
        ("cardinal", "1234", "one thousand two hundred thirty-four"),
        ("cardinal", "1,000,001", "one million one"),
        ("cardinal", "-42", "minus forty-two"),
        ("cardinal", "3.14", "three point one four"),
        ("cardinal", "999999999999", numbers.cardinal(999_999_999_999)),
        ("cardinal", "1000000000000", "1 0 0 0 0 0 0 0 0 0 0 0 0"),
        ("ordinal", "1", "first"),
        ("ordinal", "2nd", "second"),
        ("ordinal", "3", "third"),
        ("ordinal", "21st", "twenty-first"),
        ("ordinal", "12", "twelfth"),
        ("ordinal", "40", "fortieth"),
        ("ordinal", "100", "one hundredth"),
        ("ordinal", "1,000,000", "one millionth"),
        ("date", "2024-03-05", "March fifth, twenty twenty-four"),
        ("date", "3/5/2024", "March fifth, twenty twenty-four"),
        ("date", "12/31/1999", "December thirty-first, nineteen ninety-nine"),
        ("telephone", "555-123-4567", "5 5 5, 1 2 3, 4 5 6 7"),
        ("telephone", "5551234567", "5 5 5, 1 2 3, 4 5 6 7"),
        ("telephone", "+44 20 7946 0958", "plus 4 4, 2 0, 7 9 4 6, 0 9 5 8"),
        ("telephone", "(800) FLOWERS", "8 0 0, F L O W E R S"),
    ],
)
def test_say_as(kind: str, content: str, spoken: str) -> None:
    assert say_as(content, kind) == spoken
    assert segments(f'<speak><say-as interpret-as="{kind}">{content}</say-as></speak>') == (Speech(spoken),)


@pytest.mark.parametrize(
    ("format_", "content", "spoken"),
    [
        ("mdy", "03/05/2024", "March fifth, twenty twenty-four"),
        ("dmy", "05.03.2024", "March fifth, twenty twenty-four"),
        ("ymd", "2024/3/5", "March fifth, twenty twenty-four"),
        ("dmy", "29-02-2000", "February twenty-ninth, two thousand"),
    ],
)
def test_say_as_date_formats(format_: str, content: str, spoken: str) -> None:
    text = f'<speak><say-as interpret-as="date" format="{format_}">{content}</say-as></speak>'
    assert segments(text) == (Speech(spoken),)


def test_say_as_inside_a_sentence_keeps_its_punctuation() -> None:
    text = (
        '<speak>On <say-as interpret-as="date">2024-03-05</say-as>, '
        'call <say-as interpret-as="ordinal">1</say-as>.</speak>'
    )
    assert segments(text) == (Speech("On March fifth, twenty twenty-four, call first."),)


@pytest.mark.parametrize(
    ("kind", "content", "problem"),
    [
        ("cardinal", "twelve", "needs a number"),
        ("ordinal", "-3", "whole number"),
        ("ordinal", "1" * 13, "up to"),
        ("date", "2023-02-29", "day 29"),
        ("date", "2024-13-01", "month 13"),
        ("date", "March 5", "needs a date"),
        ("digits", "--", "needs digits"),
        ("telephone", "--", "needs a number"),
        ("characters", " ", "needs something"),
    ],
)
def test_say_as_refuses_what_it_cannot_say(kind: str, content: str, problem: str) -> None:
    error = refused(f'<speak>\n<say-as interpret-as="{kind}">{content}</say-as></speak>')
    assert error.details["element"] == "say-as" and error.details["line"] == 2
    assert problem in error.message


# -- numbers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("number", "words"),
    [
        (7, "seven"),
        (15, "fifteen"),
        (20, "twenty"),
        (99, "ninety-nine"),
        (101, "one hundred one"),
        (110, "one hundred ten"),
        (1000, "one thousand"),
        (2_000_019, "two million nineteen"),
        (
            1_234_567_890,
            "one billion two hundred thirty-four million five hundred sixty-seven thousand eight hundred ninety",
        ),
        (-5, "minus five"),
    ],
)
def test_cardinals(number: int, words: str) -> None:
    assert numbers.cardinal(number) == words


def test_numbers_past_the_billions_are_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        numbers.cardinal(10**12)
    with pytest.raises(ValueError, match="negative"):
        numbers.ordinal(-1)


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zeroth"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (11, "eleventh"),
        (20, "twentieth"),
        (1003, "one thousand third"),
    ],
)
def test_ordinals(number: int, words: str) -> None:
    assert numbers.ordinal(number) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1999, "nineteen ninety-nine"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (2024, "twenty twenty-four"),
        (850, "eight hundred fifty"),
    ],
)
def test_years(year: int, words: str) -> None:
    assert numbers.year(year) == words


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "element", "line", "problem"),
    [
        ("<speak>\n<foo>x</foo></speak>", "foo", 2, "unknown element"),
        ('<speak>\n\n<break time="3x"/></speak>', "break", 3, "time must be"),
        ('<speak><break time="11s"/></speak>', "break", 1, "at most 10s"),
        ('<speak><break strength="loud"/></speak>', "break", 1, "strength must be"),
        ('<speak><break size="1"/></speak>', "break", 1, "unknown attribute 'size'"),
        ('<speak>\n<prosody pitch="high">x</prosody></speak>', "prosody", 2, "unknown attribute 'pitch'"),
        ('<speak><prosody rate="5000%">x</prosody></speak>', "prosody", 1, "rate must be"),
        ('<speak><prosody rate="+10%">x</prosody></speak>', "prosody", 1, "rate must be"),
        ("<speak><prosody>x</prosody></speak>", "prosody", 1, "needs a rate"),
        ('<speak><emphasis level="loud">x</emphasis></speak>', "emphasis", 1, "level must be"),
        ("<speak><sub>x</sub></speak>", "sub", 1, "needs an alias"),
        ('<speak><sub alias="a"><break/></sub></speak>', "break", 1, "only characters"),
        ("<speak><say-as>x</say-as></speak>", "say-as", 1, "needs an interpret-as"),
        ('<speak><say-as interpret-as="time">1:00</say-as></speak>', "say-as", 1, "interpret-as must be"),
        ('<speak><say-as interpret-as="cardinal" format="dmy">1</say-as></speak>', "say-as", 1, "format is only"),
        ('<speak><say-as interpret-as="date" format="iso">1</say-as></speak>', "say-as", 1, "format must be"),
        ('<speak><phoneme alphabet="x-sampa" ph="a">a</phoneme></speak>', "phoneme", 1, "alphabet must be"),
        ("<speak><phoneme>a</phoneme></speak>", "phoneme", 1, "needs a ph"),
        ("<speak><p><p>x</p></p></speak>", "p", 1, "paragraph cannot be inside"),
        ("<speak><s><s>x</s></s></speak>", "s", 1, "sentence cannot be inside"),
        ("<speak><speak>x</speak></speak>", "speak", 1, "outermost"),
        ("<speak>\n<p>never closed\n</speak>", "p", 3, "mismatched tag"),
        ("<speak>x</speak> trailing", "speak", 1, "junk after document element"),
        ("<speak>Tom &amp Jerry</speak>", "speak", 1, "not well-formed"),
        ("<speak>&nbsp;</speak>", "speak", 1, "undefined entity"),
    ],
)
def test_errors_name_the_element_and_the_line(text: str, element: str, line: int, problem: str) -> None:
    error = refused(text)
    assert error.status == 422
    assert error.details["field"] == "text"
    assert error.details["element"] == element
    assert error.details["line"] == line
    assert f"line {line}" in error.message and f"<{element}>" in error.message
    assert problem in error.message
    assert error.message.startswith("text: ")


def test_a_document_with_nothing_to_say_is_empty_text() -> None:
    for text in ("<speak/>", "<speak>  </speak>", '<speak><break time="1s"/></speak>', "<speak><p> </p></speak>"):
        with pytest.raises(EmptyText):
            parse_ssml(text)


def test_depth_and_element_count_are_bounded() -> None:
    deep = "<speak>" + "<prosody rate='medium'>" * MAX_DEPTH + "x" + "</prosody>" * MAX_DEPTH + "</speak>"
    error = refused(deep)
    assert "nested deeper" in error.message and error.details["element"] == "prosody"
    ok = "<speak>" + "<prosody rate='medium'>" * (MAX_DEPTH - 1) + "x" + "</prosody>" * (MAX_DEPTH - 1) + "</speak>"
    assert segments(ok) == (Speech("x"),)
    many = "<speak>" + "<sub alias='a'>b</sub>" * MAX_ELEMENTS + "</speak>"
    assert "more than" in refused(many).message


def test_total_silence_is_bounded() -> None:
    text = "<speak>a" + '<break time="10s"/>' * 31 + "</speak>"
    assert "pauses" in refused(text).message


# -- hostile XML ------------------------------------------------------------------------------------
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<speak>&lol9;</speak>"""


@pytest.mark.parametrize(
    "text",
    [
        BILLION_LAUGHS,
        '<!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>',
        '<!DOCTYPE speak SYSTEM "http://example.invalid/speak.dtd"><speak>x</speak>',
        '<!DOCTYPE speak [<!ENTITY % p SYSTEM "http://example.invalid/x">%p;]><speak>x</speak>',
        "<!DOCTYPE speak><speak>x</speak>",
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "any-dtd"],
)
def test_dtds_and_entities_are_refused_fast(text: str) -> None:
    started = time.perf_counter()
    error = refused(text)
    assert time.perf_counter() - started < 0.5
    assert "not allowed" in error.message
    assert "passwd" not in error.message and "root" not in error.message


# -- not strict -------------------------------------------------------------------------------------
def test_not_strict_speaks_a_broken_document_as_plain_text_with_a_warning() -> None:
    document = parse_ssml("<speak>Fish &amp; <unknown>chips</unknown><break time='x'/></speak>", strict=False)
    assert document.segments == (Speech("Fish & chips"),)
    assert len(document.warnings) == 1 and "plain text" in document.warnings[0]
    assert document.warnings[0].isascii()
    malformed = parse_ssml("<speak>Hello <p>there</speak>", strict=False)
    assert malformed.segments == (Speech("Hello there"),)


def test_not_strict_still_refuses_nothing_to_say() -> None:
    with pytest.raises(EmptyText):
        parse_ssml("<speak><unknown/></speak>", strict=False)


def test_not_strict_parses_a_valid_document_as_strict_does() -> None:
    text = '<speak>A<break time="1s"/><prosody rate="slow">B</prosody></speak>'
    assert parse_ssml(text, strict=False) == parse_ssml(text) == Document((Speech("A"), Pause(1.0), Speech("B", 0.75)))


# -- fuzz ------------------------------------------------------------------------------------------
_TAGS = ["speak", "break", "p", "s", "sub", "say-as", "phoneme", "prosody", "emphasis", "foo", "!DOCTYPE", "?xml"]
_ATTRIBUTES = [
    'time="1s"',
    'time="10ms"',
    'strength="weak"',
    'alias="x"',
    'interpret-as="cardinal"',
    'interpret-as="date"',
    'interpret-as="characters"',
    'interpret-as="telephone"',
    'format="dmy"',
    'rate="x-slow"',
    'rate="50%"',
    'level="strong"',
    'ph="a"',
    'bogus="1"',
    "",
]
_piece = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["&amp;", "&lt;", "&#65;", "&x;", "<![CDATA[", "]]>", "<!--", "-->", "12", "2024-03-05", "<", ">"]),
    st.builds(lambda tag, attribute: f"<{tag} {attribute}>", st.sampled_from(_TAGS), st.sampled_from(_ATTRIBUTES)),
    st.builds(lambda tag, attribute: f"<{tag} {attribute}/>", st.sampled_from(_TAGS), st.sampled_from(_ATTRIBUTES)),
    st.builds(lambda tag: f"</{tag}>", st.sampled_from(_TAGS)),
)


@settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_piece, max_size=30), st.booleans(), st.booleans())
def test_fuzz_raises_only_api_errors(pieces: list[str], wrap: bool, strict: bool) -> None:
    text = "".join(pieces)
    if wrap:
        text = f"<speak>{text}</speak>"
    started = time.perf_counter()
    try:
        document = parse_ssml(text, strict=strict)
    except ApiError as error:
        assert error.status == 422
        assert error.message.startswith("text: ")
    else:
        assert any(isinstance(segment, Speech) for segment in document.segments)
        for segment in document.segments:
            if isinstance(segment, Speech):
                assert segment.text.strip() and segment.speed_factor > 0
            else:
                assert 0 < segment.seconds <= 300
    assert time.perf_counter() - started < 1.0


@settings(max_examples=200, deadline=1000)
@given(st.text(max_size=200))
def test_fuzz_any_text_inside_speak(text: str) -> None:
    try:
        parse_ssml(f"<speak>{text}</speak>")
    except ApiError as error:
        assert error.status == 422


def test_a_phoneme_longer_than_an_engine_takes_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="at most 200"):
        parse_ssml(f'<speak><phoneme alphabet="ipa" ph="{"ə" * 201}">x</phoneme></speak>')
