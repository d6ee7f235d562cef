"""Search terms marked in a result's snippet: escaped text, our own <mark> only, at a bounded cost."""

from __future__ import annotations

import re
from typing import Any

from newsflow_storage.web.highlight import MARKED_TERMS, SNIPPET_SEARCH_CHARACTERS, marked, snippet, word_pattern


def test_the_snippet_is_a_window_around_the_first_match_with_the_matches_marked() -> None:
    text = " ".join(["filler"] * 200) + " The <b>Council</b> met.\n\nThe council voted. " + " ".join(["more"] * 200)
    shown = snippet(text, word_pattern("council"))
    assert shown.startswith("… ")
    assert shown.endswith(" …")
    assert "&lt;b&gt;<mark>Council</mark>&lt;/b&gt; met. The <mark>council</mark> voted." in shown
    assert marked("<i>x</i>", None) == "&lt;i&gt;x&lt;/i&gt;"


class Recorded:
    """A compiled pattern that notes the length of each text it is asked to search."""

    def __init__(self, pattern: re.Pattern[str], lengths: list[int]) -> None:
        self.pattern, self.lengths = pattern, lengths

    def search(self, text: str) -> Any:
        self.lengths.append(len(text))
        return self.pattern.search(text)

    def finditer(self, text: str) -> Any:
        self.lengths.append(len(text))
        return self.pattern.finditer(text)


def test_a_match_is_looked_for_only_so_far_into_a_long_article() -> None:
    """Terms the expression never finds (hyphenated pairs, which full-text search reads as phrases) had it scan
    every result's whole text on the event loop: 0.5 s for one article of 2 MB."""
    lengths: list[int] = []
    pattern = word_pattern(" ".join(f"w{i}-x{i}" for i in range(70)))
    assert pattern is not None
    text = "Nothing here matches. " * 100_000 + "w1-x1 at the very end"
    shown = snippet(text, Recorded(pattern, lengths))  # type: ignore[arg-type]
    assert max(lengths) <= SNIPPET_SEARCH_CHARACTERS
    assert shown.startswith("Nothing here matches.")
    assert shown.endswith(" …")
    assert "<mark>" not in shown


def test_a_query_of_hundreds_of_words_marks_its_first_ones() -> None:
    # Each word is tried at every place in the text: 250 hyphenated pairs, which full-text search matches as phrases
    # and no text held as written, made each result's snippet scan 100,000 characters 250 times over.
    pairs = [f"{a}-{b}" for a in "abcdefghijklmnopqrstuvwxyz" for b in "abcdefghij"]
    pattern = word_pattern(" ".join(["in", "Douma", "douma", *pairs]))
    assert pattern is not None
    alternatives = pattern.pattern.split("(", 2)[2].rstrip(")").split("|")
    assert len(alternatives) == MARKED_TERMS
    assert {"Douma", "douma", "a\\-a", "a\\-b"} <= set(alternatives)  # the longest, first among equals
    assert "z\\-j" not in alternatives
    assert "in" not in alternatives
    assert snippet("Rebels left Douma on Sunday", pattern) == "Rebels left <mark>Douma</mark> on Sunday"
