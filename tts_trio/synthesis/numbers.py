"""English number words for SSML ``say-as``: cardinals, ordinals and years, up to the billions.

American style, without "and": 1234 is "one thousand two hundred
thirty-four", 21 as an ordinal is "twenty-first", 1905 as a year is
"nineteen oh five". Numbers from a trillion up are out of range
(:data:`MAX_NUMBER`); callers say them digit by digit instead.
"""

from __future__ import annotations

#: The largest number that is spelled out in words.
MAX_NUMBER = 10**12 - 1

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(number: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(number, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(f"{_TENS[tens]}-{_ONES[ones]}" if ones else _TENS[tens])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def cardinal(number: int) -> str:
    """``number`` in words; negative numbers start with "minus". Raises ValueError beyond :data:`MAX_NUMBER`."""
    if abs(number) > MAX_NUMBER:
        raise ValueError(f"{number} is out of range")
    if number < 0:
        return "minus " + cardinal(-number)
    if number == 0:
        return "zero"
    words: list[str] = []
    for scale, name in _SCALES:
        count, number = divmod(number, scale)
        if count:
            words += [*_below_thousand(count), name]
    if number:
        words += _below_thousand(number)
    return " ".join(words)


def ordinal(number: int) -> str:
    """``number`` as an ordinal ("first", "twenty-second", "one hundredth"); from zero up."""
    if number < 0:
        raise ValueError("an ordinal cannot be negative")
    words = cardinal(number).split(" ")
    head, dash, last = words[-1].rpartition("-")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    words[-1] = f"{head}{dash}{last}"
    return " ".join(words)


def year(number: int) -> str:
    """A year as it is said: "nineteen ninety-nine", "two thousand five", "twenty twenty-four"."""
    if not 1000 <= number <= 9999:
        return cardinal(number)
    century, rest = divmod(number, 100)
    if 2000 <= number <= 2009 or (century % 10 == 0 and rest == 0):
        return cardinal(number)  # "two thousand", "two thousand nine", "three thousand"
    if rest == 0:
        return f"{cardinal(century)} hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {_ONES[rest]}"
    return f"{cardinal(century)} {cardinal(rest)}"


def digits(text: str) -> str:
    """Each digit of ``text`` on its own, separated by spaces ("123" -> "1 2 3"); other characters are dropped."""
    return " ".join(char for char in text if char.isdecimal())
