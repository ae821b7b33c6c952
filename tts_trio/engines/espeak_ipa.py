"""IPA to espeak-ng's phoneme mnemonics, so the ``system`` engine speaks the lexicon's and SSML's IPA.

espeak-ng takes phonemes only in its own ASCII mnemonics, inside ``[[...]]``
(close to Kirshenbaum: ``tS'IkIn`` for "chicken"), and writes IPA only as
output (``--ipa``). :func:`to_mnemonics` maps IPA back: longest symbol
first, for the phonemes of English as espeak-ng writes them (its own
``--ipa`` output maps back to its ``-x`` output: the tests check that word
by word), plus the common IPA spellings of the same sounds. Where
espeak-ng writes two of its phonemes with one IPA symbol (its en-us ``aa``
and ``a`` are both ``æ``) the mapping picks one, so a few vowels are close
rather than exact.

A symbol with no mnemonic here (a click, a tone, a phoneme of another
language's table) makes the whole span unsupported: :func:`to_mnemonics`
returns None and the engine speaks the written word instead, rather than
something unpredictable.
"""

from __future__ import annotations

#: IPA → espeak-ng mnemonic (English phoneme table); sequences before their parts.
_SYMBOLS: dict[str, str] = {
    # r-coloured vowels as espeak-ng's en-us table names them
    "ɑːɹ": "A@",
    "ɑɹ": "A@",
    "ɔːɹ": "O@",
    "ɔɹ": "O@",
    "ɪɹ": "i@3",
    "iɹ": "i@3",
    "oːɹ": "o@",
    "oɹ": "o@",
    "ɛɹ": "e@",
    "eɹ": "e@",
    "ʊɹ": "U@",
    "ɜːɹ": "3:",
    "ɜː": "3:",
    "ɝ": "3:",
    "ɚ": "3",
    # diphthongs
    "eɪ": "eI",
    "aɪ": "aI",
    "aʊ": "aU",
    "oʊ": "oU",
    "əʊ": "oU",
    "ɔɪ": "OI",
    "ɪə": "i@",
    "eə": "e@",
    "ʊə": "U@",
    # affricates
    "tʃ": "tS",
    "dʒ": "dZ",
    "ʧ": "tS",
    "ʤ": "dZ",
    # long vowels
    "ɑː": "A:",
    "ɔː": "O:",
    "iː": "i:",
    "uː": "u:",
    "oː": "o:",
    # short vowels
    "ə": "@",
    "ɐ": "a#",
    "ɪ": "I",
    "ᵻ": "I",
    "ʊ": "U",
    "ʌ": "V",
    "æ": "a",
    "ɛ": "E",
    "ɒ": "0",
    "ɑ": "A",
    "ɔ": "O",
    "i": "i",
    "u": "u",
    "e": "e",
    "o": "o",
    "a": "a",
    # consonants
    "θ": "T",
    "ð": "D",
    "ʃ": "S",
    "ʒ": "Z",
    "ŋ": "N",
    "ɹ": "r",
    "r": "r",
    "ɾ": "t#",
    "ɡ": "g",
    "g": "g",
    "ʔ": "?",
    "ç": "C",
    "x": "x",
    "l̩": "@L",
    "ɫ": "l",
    **{letter: letter for letter in "bdfhjklmnpstvwz"},
    # stress, length, boundaries
    "ˈ": "'",
    "ˌ": ",",
    "ː": ":",
    ".": "",
    " ": " ",
}
_LONGEST = max(map(len, _SYMBOLS))
#: espeak-ng keeps one word's phonemes in a small fixed buffer and does not bound it (1.51: a word of
#: some 250 phonemes drops the rest of the sentence, 380 crash the process), so longer words are refused.
MAX_WORD_MNEMONICS = 60
MAX_SPAN_MNEMONICS = 200
_SOUND = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@3")


def to_mnemonics(ipa: str) -> str | None:
    """``ipa`` as espeak-ng mnemonics; None when a symbol has none here, a word is too long, or nothing sounds."""
    out: list[str] = []
    position = 0
    text = " ".join(ipa.split())
    while position < len(text):
        for size in range(min(_LONGEST, len(text) - position), 0, -1):
            mnemonic = _SYMBOLS.get(text[position : position + size])
            if mnemonic is not None:
                out.append(mnemonic)
                position += size
                break
        else:
            return None
    result = "".join(out).strip()
    words = result.split()
    if not words or len(result) > MAX_SPAN_MNEMONICS or any(len(word) > MAX_WORD_MNEMONICS for word in words):
        return None
    if not all(_SOUND.intersection(word) for word in words):
        return None  # stress or length marks alone: nothing would be said
    return result
