from tests.support.live import PARAGRAPH
from tts_trio.synthesis.sentences import SsmlDocuments, iter_sentences


def test_iter_sentences_splits_paragraph_and_keeps_abbreviations() -> None:
    sentences = list(iter_sentences(PARAGRAPH))
    assert len(sentences) == 10
    assert sentences[1] == "Dr. Smith arrived at 3.30 p.m. and greeted everyone in the hall."
    assert "".join(sentences).replace(" ", "") == PARAGRAPH.replace(" ", "")


def test_iter_sentences_is_lazy_on_long_text() -> None:
    text = PARAGRAPH * 200
    sentences = iter_sentences(text)
    assert next(sentences).startswith("The quick brown fox")
    # Nothing past the first sentence needs to have been scanned: the
    # generator resumes from where it stopped.
    assert next(sentences).startswith("Dr. Smith")


def test_iter_sentences_cuts_overlong_sentences_at_soft_breaks() -> None:
    text = "word, " * 200
    pieces = list(iter_sentences(text, max_chars=100))
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith(",") for piece in pieces[:-1])
    assert sum(piece.count("word") for piece in pieces) == 200


def test_iter_sentences_cuts_text_without_spaces() -> None:
    pieces = list(iter_sentences("x" * 250, max_chars=100))
    assert [len(piece) for piece in pieces] == [100, 100, 50]


def test_iter_sentences_skips_punctuation_only_fragments() -> None:
    assert list(iter_sentences("... !!! ?? Hello.")) == ["Hello."]
    assert list(iter_sentences("   ")) == []


def test_iter_sentences_splits_on_newlines() -> None:
    assert list(iter_sentences("First line\nSecond line")) == ["First line", "Second line"]


def test_ssml_documents_come_whole_once_closed() -> None:
    documents = SsmlDocuments()
    assert documents.feed("<speak>a <break/>") == []
    assert documents.feed("b</speak >  <speak>c</spe") == ["<speak>a <break/>b</speak >"]
    assert documents.feed("ak>") == ["  <speak>c</speak>"]
    assert documents.flush() == ""
    documents.feed("<speak>never closed")
    assert documents.flush() == "<speak>never closed" and documents.flush() == ""
