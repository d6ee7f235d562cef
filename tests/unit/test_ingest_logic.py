from __future__ import annotations

from datetime import UTC, datetime

from newsflow_ingest.logic import article_id, content_hash, ingest, normalise_url
from newsflow_shared import RawArticle


def test_id_is_the_given_one_else_url_hash_else_text_hash() -> None:
    assert article_id(RawArticle(id="given", text="x", url="https://a.example/x")) == "given"
    by_url = article_id(RawArticle(text="x", url="https://A.example/story/"))
    assert by_url.startswith("url-")
    assert by_url == article_id(RawArticle(text="other text", url="https://a.example/story#comments"))
    by_text = article_id(RawArticle(title="T", text="Body"))
    assert by_text.startswith("text-")
    assert by_text == article_id(RawArticle(title="T", text="Body"))
    assert by_text != article_id(RawArticle(title="T", text="Body 2"))


def test_html_only_articles_sent_with_blank_text_get_ids_of_their_own() -> None:
    """Cleanup reads the page when the text is blank; so does the id, or every such article was one."""
    story_a = article_id(RawArticle(text="\n", html="<p>Story A</p>"))
    assert story_a != article_id(RawArticle(text="\n", html="<p>Story B</p>"))
    assert story_a == article_id(RawArticle(html="<p>Story A</p>"))
    # Blank as a reader sees it, as cleanup decides it: a zero-width space or "&nbsp;" gave every page one id.
    for unseen in ("\u200b", "\ufeff", "&nbsp;", "\u2060\u200d"):
        assert article_id(RawArticle(text=unseen, html="<p>Story A</p>")) == story_a
    # Text that is there still decides, as it always did: the ids of stored articles do not change.
    assert article_id(RawArticle(text="Body", html="<p>A</p>")) == article_id(RawArticle(text="Body", html="<p>B</p>"))


def test_url_normalisation_keeps_query_but_drops_fragment() -> None:
    assert normalise_url("HTTPS://News.Example.com/a/b/?id=3#top") == "https://news.example.com/a/b?id=3"


def test_content_hash_changes_with_content_only() -> None:
    a = RawArticle(id="1", title="T", text="Body", metadata={"x": 1})
    assert content_hash(a) == content_hash(RawArticle(id="1", title="T", text="Body"))
    assert content_hash(a) != content_hash(RawArticle(id="1", title="T", text="Body!"))


def test_naive_dates_are_taken_as_utc() -> None:
    article = ingest(RawArticle(text="x", published_at=datetime(2026, 1, 2, 3, 4)), max_bytes=1000)
    assert article.published_at == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert article.lineage[0].stage == "ingest"


def test_a_url_with_credentials_is_stored_without_them_and_keeps_its_id() -> None:
    """The article page linked the address with the password in it."""
    from newsflow_ingest.logic import article_id, ingest

    raw = RawArticle(text="Body.", url="https://editor:s3cret@news.example.com/a?x=1#top")
    ingested = ingest(raw, max_bytes=1 << 20)
    assert ingested.url == "https://news.example.com/a?x=1#top"
    assert ingested.id == article_id(raw)  # of the URL as it came: a re-send keeps its id
    assert ingest(RawArticle(text="Body.", url="https://news.example.com/a@b"), max_bytes=1 << 20).url == (
        "https://news.example.com/a@b"  # an '@' in the path is no login
    )
