"""Text repair: mojibake, entities, invisible characters, spacing damage, quotes, paragraphs.

Each function takes and returns plain text, so each repair is tested on its own.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import ftfy
from ftfy.badness import is_bad
from ftfy.chardata import CONTROL_CHARS, LIGATURES, WIDTH_MAP

from newsflow_shared.text_safety import make_safe, unescape_html

# Invisible characters that break words for search and models alike; the invisible operators (U+2061-2064) and Unicode
# tags, which hide a second text in plain sight ("ASCII smuggling", read by a model, never by an editor), but for the
# tags that spell a flag after U+1F3F4 (England's, Scotland's, Wales').
_INVISIBLE_CHARACTERS = "\u200b\u200c\u200d\u2060-\u2064\ufeff\u00ad\u180e\U000e0000-\U000e007f"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARACTERS}]")
_BLACK_FLAG = "\U0001f3f4"
# A subdivision flag as Unicode spells one (ISO 3166-2: two tag letters, then one to four tag letters or digits, the
# cancel tag): any run of tags after the flag let a hidden text through.
_INVISIBLE_BUT_FLAGS = re.compile(
    f"({_BLACK_FLAG}[\U000e0061-\U000e007a]{{2}}[\U000e0030-\U000e0039\U000e0061-\U000e007a]{{1,4}}\U000e007f)"
    f"|[{_INVISIBLE_CHARACTERS}]"
)
# Runs of two or more, or one space of another kind: a lone " " is left alone rather than matched and replaced by
# itself at every word. The space before punctuation is found from the space on, its look-behind after it, so the
# scan looks for a literal character instead of trying the look-behind at every position. Together these save
# ~0.04 ms per 1.3 KB article (bench/repair.py); the output is the same (tests/unit/test_cleanup.py).
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_CLOSING_PUNCT = ",.;:!?%)]}"
_SPACE_BEFORE_PUNCT = re.compile(f"[ ](?<=[\\w%)\\]][ ])[ ]*([{re.escape(_CLOSING_PUNCT)}])(?=\\s|$)")
_SPACED_PUNCT = tuple(" " + mark for mark in _CLOSING_PUNCT)  # what every match of the one above holds
_SPACE_AFTER_OPEN = re.compile(r"([(\[{])[ ]+")
# "United Kingdom -based" → "United Kingdom-based": a hyphen glued to the next word but spaced from
# the last is a broken compound (a dash used as punctuation has spaces on both sides).
# "2 -1" is a score. Both hyphen expressions start from their literal space or hyphen, the look-behind after it, as
# the space before punctuation does: a look-behind first is tried at every position (0.11 against 0.02 ms, 0.11
# against 0.001 ms for 1.3 KB with a spaced dash).
_DETACHED_HYPHEN = re.compile(r" (?:(?<=\w ) *-(?=[^\W\d_]{2})|(?<=\d )-(?=\d+\b))")
# "second- division" → "second-division"; "pre- and post-war" keeps its space before a conjunction.
_HANGING_HYPHEN = re.compile(r"-(?<=[^\W\d_]{2}-) +(?!(?:and|or|to|und|oder|et|ou|y|o|e|och|en|i)\b)(?=[^\W\d_]{2})")
# "the market.The" → "the market. The": a sentence run into the next (not "e.g." nor "U.S.").
# (The stop comes first in the pattern so the look-behind runs only at stops: 4x faster on 5 KB.)
_RUN_ON_SENTENCE = re.compile(r"[.!?](?<=[^\W\d_A-Z]{2}[.!?])(?=[A-Z][^\W\d_A-Z]+[\s,;:])")
_STRAIGHT_QUOTE = {
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'),
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
}
# Found and replaced by a regular expression rather than str.translate, as are the invisible characters: translate
# looks every character of a non-ASCII text up in a dict (~150 µs for 1,300 characters, where the expression scans
# in C in ~7 µs), and one curly quote or em dash makes a text non-ASCII. repair() on our English 1.3 KB leads went
# from 0.60 to 0.47 ms per article with this alone (bench/repair.py).
_CURLY_QUOTE = re.compile(f"[{''.join(_STRAIGHT_QUOTE)}]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Three or more line breaks (with only spaces between) say no more than two: ftfy works line by
# line, and a text of 200,000 newlines took it seconds.
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*(?:\n[ \t\r\f\v]*)+\n")
# ftfy works line by line and costs ~0.1 ms for a clean 160-character line, 1 ms for 1,300 characters, half of it in
# its search for mojibake (one expression of 37 alternatives tried at every position). A line it would hand back as it
# is skips it. The commonest case first: printable ASCII and tabs without '&', with news's dashes, curly quotes and
# ellipses. ftfy's fixers map none of these characters, they are NFC already, and no match of its mojibake expression
# is made of them alone (tests/unit/test_cleanup.py checks all three): 94 % of our written English lines.
_TYPOGRAPHIC = "\u2013\u2014\u2018\u2019\u201c\u201d\u2026"
_PLAIN = f"\\t\\x20-\\x25\\x27-\\x7e{_TYPOGRAPHIC}"  # for a character class: the set above, '&' left out
_PLAIN_LINE = re.compile(f"[{_PLAIN}]*\\n?")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False, normalization="NFC", explain=False)
_FTFY_IN_MARKUP = _FTFY._replace(unescape_html=False)
# Any other line ftfy keeps unless it holds what one of its other fixers changes (these characters, or '&' of an
# entity), is not NFC, or looks like mojibake. Its mojibake search is run only around the characters outside the plain
# set above, as every match holds one of them: over a few characters beside a pound sign or an accent, not the line.
# 99.8 % of our written lines skip ftfy this way, in every language (88.9 % by the plain set alone), and repair() went
# from 0.37 to 0.18 ms per 1.3 KB lead (bench/repair.py), with the same output.
_FTFY_CHANGES = re.compile(
    "[{}\ud800-\udfff]".format(
        re.escape(
            "".join(
                sorted(
                    {chr(code) for table in (LIGATURES, WIDTH_MAP, CONTROL_CHARS) for code in table}
                    | {chr(code) for code in range(0x80, 0xA0)}  # C1 controls, mojibake of Windows-1252
                    | set("&\r\u2028\u2029\x1b")  # entities, line breaks ftfy rewrites, terminal escapes
                )
            )
        )
    )
)
_OUTSIDE_PLAIN = re.compile(f"[^\\n&{_PLAIN}]")  # '&' is plain here: a line holding one never gets this far
# Line breaks other than "\n", as Python's str.splitlines() knows them, and the unit separator, a space between words:
# ftfy deletes these controls (of them it keeps only form feed), and "said\x0bthe plan" (Word's manual line break) was
# stored as "saidthe plan". U+0085 is left to ftfy, which reads it as Windows-1252's "…" mis-decoded, as it mostly is.
_LINE_BREAKING = "\u2028\u2029\x0b\x0c\x1c\x1d\x1e"  # and "\r", with the "\n" that may follow it
_OTHER_LINE_BREAKS = re.compile(f"\r\n?|[{_LINE_BREAKING}]")
_UNIT_SEPARATOR = "\x1f"
_BREAKING_CONTROLS = "\r" + _LINE_BREAKING + _UNIT_SEPARATOR
# '&' escaped two levels or more: "&amp;amp;", "&#38;#38;", "&#x26;amp;" …
_ESCAPED_AMPERSANDS = re.compile(r"&(?:amp;|#0*38;|#x0*26;){2,}", re.IGNORECASE)
_MOJIBAKE_REACH = 6  # ftfy's longest mojibake pattern is 7 characters long (a test checks)


def _looks_like_mojibake(line: str) -> bool:
    """``ftfy.badness.is_bad(line)``, searched only within reach of the characters outside the plain set.

    Exact but for one pattern anchored at the start of the text: a window may start with it. That sends the line to
    ftfy, which decides for itself.
    """
    start = end = 0  # the window so far, empty at first
    for outside in _OUTSIDE_PLAIN.finditer(line):
        at = outside.start()
        if at - _MOJIBAKE_REACH > end:  # apart from the window so far: look there first
            if end > start and is_bad(line[start:end]):
                return True
            start = at - _MOJIBAKE_REACH
        end = at + _MOJIBAKE_REACH + 1
    return end > start and is_bad(line[start:end])


def _ftfy_keeps(line: str) -> bool:
    """Whether ``ftfy.fix_text`` would return ``line`` unchanged, found for a fraction of its cost."""
    if _PLAIN_LINE.fullmatch(line):
        return True
    return (
        len(line) <= _FTFY.max_decode_length  # longer lines ftfy cuts into pieces, each with its own start
        and not _FTFY_CHANGES.search(line)
        and unicodedata.is_normalized("NFC", line)
        and not _looks_like_mojibake(line)
    )


def _ftfy_fix(text: str) -> str:
    """``ftfy.fix_text`` with the same result, handing it only the lines it could change.

    ftfy splits at each newline too, and stops unescaping entities for the rest of a text once a line holds
    '<' (markup, where '&lt;' must stay): that is kept across the runs it is handed.
    """
    out: list[str] = []
    pending: list[str] = []
    config = _FTFY

    def flush() -> None:
        nonlocal config
        if pending:
            out.append(ftfy.fix_text("".join(pending), config))
            if any("<" in line for line in pending):
                config = _FTFY_IN_MARKUP
            pending.clear()

    for line in _LINE.findall(text):
        if _ftfy_keeps(line):
            flush()
            out.append(line)
            if "<" in line:
                config = _FTFY_IN_MARKUP
        else:
            pending.append(line)
    flush()
    return "".join(out)


def fix_encoding(text: str) -> str:
    """Mojibake and HTML entities (ftfy), then NFC, so equal text is equal bytes."""
    if any(control in text for control in _BREAKING_CONTROLS):  # a substring search each: ~10 µs less a lead
        # ftfy makes "\r" and U+2028/9 newlines, but only after its other fixers: every line held one and went
        # through them all (316,000 "a\r\n\r\n" took 14 s), and blank lines of them were not collapsed below.
        text = _OTHER_LINE_BREAKS.sub("\n", text).replace(_UNIT_SEPARATOR, " ")
    if "&" in text:
        # Escaped again and again ("&amp;amp;amp;lt;"): ftfy takes one level a pass over the line, so a chain cost its
        # depth times the line (80 KB: 9 s). Two levels are what ftfy then unescapes to the end, as before.
        text = _ESCAPED_AMPERSANDS.sub("&amp;", text)
    text = _BLANK_LINES.sub("\n\n", text)
    text = _ftfy_fix(text)
    if "&" in text:  # entities ftfy leaves alone when the text also holds a literal '&'
        text = unescape_html(text)
    return unicodedata.normalize("NFC", text)


def remove_invisible(text: str) -> str:
    """Zero-width characters and soft hyphens carry nothing a reader sees."""
    if text.isascii():
        return text
    if _BLACK_FLAG in text:  # no search at all in a text of narrower characters: CPython knows their widest
        return _INVISIBLE_BUT_FLAGS.sub(_flag_or_nothing, text)
    return _INVISIBLE.sub("", text)


def _flag_or_nothing(match: re.Match[str]) -> str:
    return match.group(1) or ""


def mend_spacing(line: str) -> str:
    """Collapse runs of spaces, mend space before punctuation and detached hyphens."""
    # Each expression runs only where a substring search (far cheaper than an expression's scan: ~10 ns a character)
    # finds what it needs: 0.08 ms per 1.3 KB, mostly for nothing, before these tests.
    if "  " in line or "\t" in line or not line.isascii():  # str.isascii() is a flag, not a scan
        line = _SPACES.sub(" ", line)
    line = line.strip()
    if any(spaced in line for spaced in _SPACED_PUNCT):
        line = _SPACE_BEFORE_PUNCT.sub(r"\1", line)
    if "( " in line or "[ " in line or "{ " in line:
        line = _SPACE_AFTER_OPEN.sub(r"\1", line)
    if " -" in line:
        line = _DETACHED_HYPHEN.sub("-", line)
    if "- " in line:
        line = _HANGING_HYPHEN.sub("-", line)
    return _RUN_ON_SENTENCE.sub(r"\g<0> ", line)


def normalise_quotes(text: str, style: Literal["ascii", "typographic"]) -> str:
    """One quote style throughout: straight ASCII, or curly quotes paired by position."""
    if not text.isascii():  # ASCII text has no curly quotes to straighten
        text = _CURLY_QUOTE.sub(lambda quote: _STRAIGHT_QUOTE[quote[0]], text)
    if style == "ascii":
        return text
    text = re.sub(r'(^|[\s(\[{—–-])"', "\\1\u201c", text)
    text = text.replace('"', "\u201d")
    text = re.sub(r"(^|[\s(\[{—–-])'", "\\1\u2018", text)
    return text.replace("'", "\u2019")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; a text with none treats each line as one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _PARAGRAPH_BREAK.split(text) if _PARAGRAPH_BREAK.search(text) else text.split("\n")
    # Inside a paragraph a single newline is a wrapped line, not a break.
    return [" ".join(line.strip() for line in block.split("\n") if line.strip()) for block in blocks]


def repair(text: str, quotes: Literal["ascii", "typographic"] = "ascii") -> list[str]:
    """All repairs in order; returns the non-empty paragraphs."""
    text = remove_invisible(make_safe(fix_encoding(text)))
    paragraphs = (mend_spacing(p) for p in split_paragraphs(text))
    return [normalise_quotes(p, quotes) for p in paragraphs if p]
