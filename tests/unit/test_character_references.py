"""Character references of any length, in every stage that decodes them: read as ``html.unescape`` reads them."""

from __future__ import annotations

import html

import pytest

from newsflow_cleanup.repair import fix_encoding
from newsflow_ingest.logic import article_id
from newsflow_shared import RawArticle, Removal
from newsflow_shared.text_safety import reads_blank, unescape_html
from newsflow_storage.web.changes import changes

# 5,000 digits: past the 4,300 that Python turns into a number at once, which html.unescape raised ValueError for.
HUGE = "&#" + "9" * 5_000 + ";"


@pytest.mark.parametrize(
    "text",
    [
        "caf&#233; &#0000000065; &#65 &#x41; &#99999999; &#1114111; &#1114112; &amp;&#12345678",
        "&#00000000000000000000000000000000000000000000000000000000000000000000065;",
        "x&#000000001234567;y &#0000000012345678 z",
    ],
)
def test_references_read_as_html_unescape_reads_them(text: str) -> None:
    assert unescape_html(text) == html.unescape(text)


def test_a_reference_of_thousands_of_digits_is_the_replacement_character() -> None:
    assert unescape_html(f"Rebels left Douma. {HUGE} Then") == "Rebels left Douma. \ufffd Then"
    assert unescape_html("&#" + "0" * 5_000 + "65;") == "A"  # leading zeros are no part of the number


def test_each_stage_reads_such_a_text() -> None:
    text = f"Rebels left Douma on Sunday. {HUGE}"
    assert not reads_blank(text)
    assert article_id(RawArticle(text=text, title="Douma"))  # ingest: an article with no id nor url gets one
    assert fix_encoding(text) == "Rebels left Douma on Sunday. \ufffd"  # cleanup
    # Storage's page: the text that arrived against the clean one, a removed line read through its references.
    removed = Removal(what=f"{HUGE} Share this", why="a share button")
    shown = changes(f"Rebels left Douma.\n\n{HUGE} Share this", "Rebels left Douma.", [removed])
    assert [(change.kind, change.why) for change in shown] == [("kept", None), ("removed", "a share button")]
