"""The pronunciation lexicon: matching rules, limits, TSV, and the file shared by replicas (a real directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.disk import Disk
from tts_trio.errors import (
    InsufficientStorage,
    LexiconEntryInvalid,
    LexiconEntryNotFound,
    LexiconFull,
    LexiconImportInvalid,
    StoreReadOnly,
)
from tts_trio.voices.lexicon import (
    FILE_NAME,
    MAX_ENTRIES,
    MAX_SPOKEN_CHARS,
    MAX_WORD_CHARS,
    PHONEMES_PATTERN,
    SPOKEN_PATTERN,
    TSV_PATTERN,
    WORD_PATTERN,
    Entry,
    Lexicon,
    LexiconSnapshot,
    parse_tsv,
)


def spoken(word: str, says: str, *, case_sensitive: bool = False) -> Entry:
    return Entry.create(word, spoken=says, case_sensitive=case_sensitive)


def say(entries: list[Entry], text: str) -> str:
    return LexiconSnapshot(entries).apply(text).text


# -- Matching ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The cat sat.", "The kitty sat."),
        ("category", "category"),
        ("concat", "concat"),
        ("cat_food", "cat_food"),  # _ is a word character
        ("cat's", "kitty's"),
        ("CAT! Cat?", "kitty! kitty?"),
        ("(cat)", "(kitty)"),
        ("cats", "cats"),
    ],
)
def test_whole_words_only_case_insensitive_by_default(text: str, expected: str) -> None:
    assert say([spoken("cat", "kitty")], text) == expected


def test_word_boundaries_are_unicode() -> None:
    entries = [spoken("café", "ka fay"), spoken("Zürich", "tsoo rick")]
    assert say(entries, "Un café à Zürich, cafés.") == "Un ka fay à tsoo rick, cafés."
    assert say(entries, "ZÜRICH") == "tsoo rick"
    assert say([spoken("東京", "Tokyo")], "東京都") == "東京都"  # CJK letters are word characters too


def test_case_sensitive_entries_match_only_their_spelling() -> None:
    entries = [spoken("US", "United States", case_sensitive=True)]
    assert say(entries, "The US and us, Us.") == "The United States and us, Us."


def test_a_case_sensitive_entry_beats_a_case_insensitive_one_for_the_same_word() -> None:
    entries = [spoken("us", "uss"), spoken("US", "United States", case_sensitive=True)]
    assert say(entries, "US us Us") == "United States uss uss"


def test_longest_entry_wins_and_multi_word_entries_take_any_whitespace() -> None:
    entries = [spoken("New", "knew"), spoken("New York", "noo york"), spoken("New York City", "the big apple")]
    assert say(entries, "New York City, New York, New\n  York and New things") == (
        "the big apple, noo york, noo york and knew things"
    )
    assert say(entries, "NewYork") == "NewYork"


def test_leftmost_match_wins_and_replacements_are_not_read_again() -> None:
    entries = [spoken("New York", "NY"), spoken("York City", "YC"), spoken("NY", "en why")]
    assert say(entries, "New York City") == "NY City"


def test_punctuation_inside_entries() -> None:
    entries = [spoken("C++", "see plus plus"), spoken(".NET", "dot net"), spoken("24/7", "all day")]
    assert say(entries, "C++, .NET and ASP.NET, 24/7 or 24 / 7") == (
        "see plus plus, dot net and ASP.NET, all day or 24 / 7"
    )
    assert say([spoken("C", "see")], "C++ and C#") == "see++ and see#"


def test_phonemes_use_the_markup_or_stay_as_written_with_a_warning() -> None:
    snapshot = LexiconSnapshot([Entry.create("tomato", phonemes="təˈmɑːtoʊ"), spoken("cat", "kitty")])
    plain = snapshot.apply("tomato and cat, tomato")
    assert plain.text == "tomato and kitty, tomato"
    assert len(plain.warnings) == 1 and "tomato" in plain.warnings[0]
    assert [r.word for r in plain.replacements] == ["cat"]
    marked = snapshot.apply("A tomato.", phonemes=lambda ipa: f"[[{ipa}]]")
    assert (marked.text, marked.warnings) == ("A [[təˈmɑːtoʊ]].", ())
    assert marked.replacements[0].kind == "phonemes"


def test_the_mapping_finds_the_original_words() -> None:
    snapshot = LexiconSnapshot([spoken("US", "United States", case_sensitive=True), spoken("Dr.", "Doctor")])
    original = "Dr. Who visits the US today"
    applied = snapshot.apply(original)
    assert applied.text == "Doctor Who visits the United States today"

    def back(word: str) -> str:
        start = applied.text.index(word)
        begin, end = applied.original_span(start, start + len(word))
        return original[begin:end]

    assert [back(w) for w in ("Doctor", "Who", "United", "States", "United States", "today")] == [
        "Dr.",
        "Who",
        "US",
        "US",
        "US",
        "today",
    ]
    assert applied.original_span(0, len(applied.text)) == (0, len(original))
    for r in applied.replacements:
        assert applied.text[r.target[0] : r.target[1]] in ("United States", "Doctor")
        assert original[r.source[0] : r.source[1]] in ("US", "Dr.")


def test_no_lexicon_changes_nothing() -> None:
    applied = LexiconSnapshot().apply("Hello there")
    assert (applied.text, applied.replacements, applied.changed) == ("Hello there", (), False)
    assert applied.original_span(6, 11) == (6, 11)


def test_apply_is_fast_with_a_full_lexicon() -> None:
    snapshot = LexiconSnapshot(spoken(f"word{i}", f"w {i}") for i in range(MAX_ENTRIES))
    text = "word5 and word9999 and other words. " * 500
    applied = snapshot.apply(text)
    assert applied.text.count("w 9999") == 500


# -- Entry rules and limits ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("word", "says"),
    [
        ("", "x"),
        ("   ", "x"),
        ("#tag", "x"),
        ("a\tb", "x"),
        ("a\nb", "x"),
        ("x" * (MAX_WORD_CHARS + 1), "x"),
        ("ok", ""),
        ("ok", " "),
        ("ok", "/ipa/"),
        ("ok", "line\nbreak"),
        ("ok", "y" * (MAX_SPOKEN_CHARS + 1)),
    ],
)
def test_bad_entries_are_refused(word: str, says: str) -> None:
    with pytest.raises(LexiconEntryInvalid):
        spoken(word, says)


def test_entry_rules_hold_at_the_limits_and_normalize_whitespace() -> None:
    entry = spoken(" New \u00a0  York ", "  noo york ")
    assert (entry.word, entry.value) == ("New York", "noo york")
    assert spoken("x" * MAX_WORD_CHARS, "y" * MAX_SPOKEN_CHARS).word == "x" * MAX_WORD_CHARS
    assert spoken("a#b", "#hashtag").value == "#hashtag"  # only a word's first character may not be #
    with pytest.raises(LexiconEntryInvalid):
        Entry.create("ok", phonemes="a/b")
    with pytest.raises(LexiconEntryInvalid):
        Entry.create("ok", spoken="a", phonemes="b")
    with pytest.raises(LexiconEntryInvalid):
        Entry.create("ok")
    with pytest.raises(LexiconEntryInvalid):
        Entry.create("ok", spoken="a", case_sensitive=1)


@pytest.mark.parametrize("word", ["ok", " a b ", "#x", "x" * MAX_WORD_CHARS, "a\x07", "C++", "24/7", "\t"])
def test_the_published_patterns_are_the_rules(word: str) -> None:
    try:
        spoken(word, "x")
        accepted = True
    except LexiconEntryInvalid:
        accepted = False
    assert (re.search(WORD_PATTERN, word) is not None and len(word) <= MAX_WORD_CHARS) == accepted
    assert re.search(SPOKEN_PATTERN, "/no") is None and re.search(PHONEMES_PATTERN, "a/b") is None


def test_the_entry_limit(tmp_path: Path) -> None:
    lexicon = Lexicon(tmp_path, max_entries=3)
    for word in ("a", "b", "c"):
        lexicon.set(spoken(word, "x"))
    lexicon.set(spoken("A", "replaced"))  # the same word again is no new entry
    with pytest.raises(LexiconFull) as refused:
        lexicon.set(spoken("d", "x"))
    assert refused.value.status == 409
    assert [e.word for e in lexicon.entries()] == ["A", "b", "c"]
    with pytest.raises(LexiconImportInvalid) as too_many:
        parse_tsv("a\tx\nb\tx\nc\tx\nd\tx\n", max_entries=3)
    assert too_many.value.details["line"] == 4


# -- TSV -----------------------------------------------------------------------------------------
def test_tsv_round_trip() -> None:
    entries = [
        spoken("New York", "noo york"),
        spoken("US", "United States", case_sensitive=True),
        Entry.create("tomato", phonemes="təˈmɑːtoʊ"),
        spoken("24/7", "twenty four seven"),
        spoken("hash#tag", "#hashtag"),
    ]
    tsv = LexiconSnapshot(entries).to_tsv()
    assert "tomato\t/təˈmɑːtoʊ/\n" in tsv and "US\tUnited States\tcase_sensitive\n" in tsv
    assert re.search(TSV_PATTERN, tsv) is not None
    assert LexiconSnapshot(parse_tsv(tsv.encode())).entries == LexiconSnapshot(entries).entries


def test_tsv_comments_blank_lines_spaces_crlf_and_bom() -> None:
    body = (
        "\ufeff# my words\r\n\r\n  # indented comment\n cat \t kitty \t\n"
        "US\tUnited States\tcase_sensitive\r\ncat\tcat again"
    )
    entries = parse_tsv(body.encode())
    assert [e.to_dict() for e in entries] == [
        {"word": "US", "spoken": "United States", "case_sensitive": True},
        {"word": "cat", "spoken": "cat again", "case_sensitive": False},  # the later line wins
    ]
    assert re.search(TSV_PATTERN, body) is not None


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"cat\tkitty\ndog\n", 2),
        (b"# ok\n\ncat\tkitty\tloud\n", 3),
        (b"cat\t/ipa\n", 1),
        (b"cat\t//\n", 1),
        (b"a\tb\tcase_sensitive\textra\n", 1),
        (b"ok\tfine\n\tempty word\n", 2),
        (b"ok\tfine\nbad\t\xff\xfe\n", 2),
        (b"x" * (MAX_WORD_CHARS + 1) + b"\ty\n", 1),
        (b"a\tb\x07\n", 1),
    ],
)
def test_a_bad_tsv_line_is_named(body: bytes, line: int) -> None:
    with pytest.raises(LexiconImportInvalid) as refused:
        parse_tsv(body)
    assert refused.value.status == 422 and refused.value.details["line"] == line
    assert f"line {line}" in refused.value.message
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return
    assert re.search(TSV_PATTERN, text) is None  # what the API description says agrees


# -- The file ------------------------------------------------------------------------------------
def test_set_delete_and_replace_on_disk(tmp_path: Path) -> None:
    lexicon = Lexicon(tmp_path / "voices")  # the directory is made by the first write
    assert lexicon.entries() == ()
    lexicon.set(spoken("cat", "kitty"))
    lexicon.set(spoken("US", "United States", case_sensitive=True))
    lexicon.set(spoken("us", "uss"))
    assert lexicon.delete("US").value == "United States"  # the case-sensitive spelling first
    assert lexicon.delete("US").value == "uss"  # then the case-insensitive entry
    with pytest.raises(LexiconEntryNotFound):
        lexicon.delete("US")
    assert lexicon.replace([spoken("dog", "doggy")]) == 1
    assert [e.word for e in lexicon.entries()] == ["dog"]
    assert lexicon.apply("a dog").text == "a doggy"


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    lexicon = Lexicon(tmp_path)
    for i in range(20):
        lexicon.set(spoken(f"w{i}", "x"))
    lexicon.delete("w3")
    lexicon.replace([spoken("only", "one")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_two_lexicons_on_one_directory_see_each_others_changes(tmp_path: Path) -> None:
    first, second = Lexicon(tmp_path), Lexicon(tmp_path)
    first.set(spoken("cat", "kitty"))
    assert second.apply("cat").text == "kitty"
    second.set(spoken("cat", "moggy"))  # same size, same second: the rename gives a new inode
    assert first.apply("cat").text == "moggy"
    second.set(spoken("dog", "doggy"))
    first.delete("cat")
    assert [e.word for e in second.entries()] == ["dog"]  # neither change was lost


def test_a_corrupt_file_is_no_lexicon_and_the_next_write_replaces_it(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("{not json")
    lexicon = Lexicon(tmp_path)
    assert lexicon.entries() == ()
    lexicon.set(spoken("cat", "kitty"))
    assert Lexicon(tmp_path).apply("cat").text == "kitty"


def test_a_full_or_read_only_disk_is_an_answer_and_changes_nothing(disk: Disk) -> None:
    lexicon = Lexicon(disk.path)
    lexicon.set(spoken("cat", "kitty"))
    disk.fill()
    with pytest.raises(InsufficientStorage):
        lexicon.replace(spoken(f"word{i}", "y" * 300) for i in range(2000))
    assert [e.word for e in Lexicon(disk.path).entries()] == ["cat"]
    assert sorted(p.name for p in disk.path.iterdir()) == ["filler", FILE_NAME]
    disk.free()
    disk.remount("ro")
    with pytest.raises(StoreReadOnly):
        lexicon.set(spoken("dog", "doggy"))
    assert lexicon.apply("cat").text == "kitty"  # reads keep working
    disk.remount("rw")
    lexicon.set(spoken("dog", "doggy"))  # and it recovers without a restart
    assert len(lexicon.entries()) == 2
