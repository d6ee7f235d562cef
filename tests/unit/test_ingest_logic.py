from __future__ import annotations

from datetime import UTC, datetime

from newsflow_ingest.logic import article_id, content_hash, former_id, ingest, normalise_url, url_id
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


def test_every_link_to_one_page_gives_one_id() -> None:
    """The same story reached from a newsletter, a share button and a feed was stored three times."""
    story = "https://news.example.com/world/story?id=3&page=2"
    for link in (
        "HTTPS://News.Example.COM:443/world/./politics/../story/?page=2&id=3#comments",
        "https://news.example.com/world/story?utm_source=newsletter&UTM_Medium=email&id=3&page=2",
        "https://news.example.com/world/story?id=3&fbclid=IwAR0x&page=2&gclid=Cj0&utm%5Fcampaign=spring",
        "https://editor:s3cret@news.example.com/world/story?id=3&page=2",
        "https://news.example.com/world/%73tory?id=3&page=2",  # an unreserved letter percent-encoded
    ):
        assert url_id(link) == url_id(story), link
    assert url_id("http://news.example.com:80/a") == url_id("http://news.example.com/a")
    assert url_id("https://bücher.example/a") == url_id("https://xn--bcher-kva.example/a")


def test_links_to_different_pages_keep_different_ids() -> None:
    """Only parameters no site uses for anything else are dropped: a broader rule would make two stories one."""
    page = "https://news.example.com/story"
    for other in ("?id=3", "?ref=4", "?source=wire", "?cid=9", "?gallery=2", "?id=3&id=4"):
        assert url_id(page + other) != url_id(page), other
    assert url_id(page + "?id=3&id=4") != url_id(page + "?id=4&id=3")  # a repeated name keeps its values' order
    assert url_id("https://news.example.com/Story") != url_id(page)  # paths are case-sensitive
    assert url_id("http://news.example.com/story") != url_id(page)
    assert url_id("https://news.example.com:8443/story") != url_id(page)


def test_addresses_that_are_no_web_page_keep_the_earlier_form() -> None:
    assert normalise_url("urn:newsml:Example.com:20260101:A1") == "urn:newsml:Example.com:20260101:A1"
    assert normalise_url("story/42/") == "story/42"
    # A host IDNA refuses is kept as it came rather than failing the article.
    label = "A" * 64  # past DNS' 63
    assert (
        normalise_url(f"https://{label}.example.com/a/?utm_source=x")
        == f"https://{label.lower()}.example.com/a?utm_source=x"
    )


def test_ids_of_urls_already_in_normal_form_did_not_move() -> None:
    """Every article stored before keeps its id; the rest are found under their former one (``former_id``)."""
    assert (
        url_id("https://news.example.com/a/b?id=3") == "url-d468b72f6e468d3ed28f71464452a6ef"
    )  # as the earlier code gave it
    plain = RawArticle(text="x", url="https://news.example.com/a/b/?id=3#top")
    assert former_id(plain, article_id(plain)) is None
    tracked = RawArticle(text="x", url="https://news.example.com/a/b?id=3&utm_source=x")
    assert former_id(tracked, article_id(tracked)) not in (None, article_id(tracked))
    given = RawArticle(id="given", text="x", url="https://news.example.com/a?utm_source=x")
    assert former_id(given, "given") is None
    # The earlier form dropped a "#!" fragment, which names a page: every such story of a site had one former id.
    hashbang = RawArticle(text="x", url="https://news.example.com/#!/story/1")
    assert url_id("https://news.example.com/#!/story/1") != url_id("https://news.example.com/#!/story/2")
    assert former_id(hashbang, article_id(hashbang)) is None


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
