"""The web page in a real browser: search, open an article, follow a facet, re-drive, and stored script never runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .. import webdata
from .conftest import Served

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.dialogs = dialogs
    yield page
    context.close()


def test_search_by_keyboard_then_open_the_seed(page: Any, served: Served) -> None:
    page.goto(served.url + "/")
    page.keyboard.press("/")  # app.js: "/" jumps to the search box
    page.keyboard.type("Douma")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=Douma*")
    result = page.get_by_role("link", name="Estimated One Thousand Failaq al-Rahman Militants Leave Syrian Douma")
    assert page.locator("mark", has_text="Douma").count() >= 1
    result.click()
    page.wait_for_url(f"**/article/{webdata.SEED_ID}")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Estimated One Thousand")
    removed = page.locator("ol.diff li.removed", has_text="Latest News")
    assert "rule: navigation menu item" in removed.inner_text()
    topics = page.locator("ol.topics li a")
    assert topics.first.inner_text() == "conflict, war and peace"


def test_follow_a_topic_facet_and_remove_it(page: Any, served: Served) -> None:
    page.goto(served.url + "/")
    page.locator("aside.facets").get_by_role("link", name="weather").click()
    page.wait_for_url("**/?topic=medtop%3A17000000")
    assert page.locator("ol.articles > li").count() == 1
    assert "Storm warning" in page.locator("ol.articles").inner_text()
    page.get_by_role("link", name="Remove the filter Topic: weather").click()
    page.wait_for_url(served.url + "/")
    assert page.locator("ol.articles > li").count() == 2


def test_redrive_one_dead_letter_and_then_all_of_a_kind(page: Any, served: Served) -> None:
    page.goto(served.url + "/pipeline")
    before = len(served.redriven)
    page.locator("table.letters").get_by_role("button", name="Re-drive").first.click()
    page.wait_for_url("**/pipeline?redriven=1*")
    assert page.get_by_role("status").inner_text().startswith("Re-drove 1 dead letter")
    assert len(served.redriven) == before + 1
    page.get_by_role("button", name="Re-drive all 2").click()  # asks first (app.js); the fixture accepts
    page.wait_for_url("**/pipeline?redriven=2*")
    assert page.dialogs
    assert "Re-drive all 2" in page.dialogs[0]
    assert len(served.redriven) == before + 3


def test_set_aside_a_letter_that_cannot_be_re_driven(page: Any, served: Served) -> None:
    page.goto(served.url + "/pipeline")
    assert "push again from the source" in page.locator("table.letters").inner_text()
    before = len(served.redriven)
    page.get_by_role("button", name="Set aside all 1 MalformedMessage of cleanup").click()  # asks first
    page.wait_for_url("**/pipeline?set_aside=1")
    assert page.get_by_role("status").inner_text().startswith("Set aside 1 dead letter: it waits no longer")
    assert any("They will not be re-driven" in message for message in page.dialogs)
    row = page.locator("table[aria-labelledby=h-kinds] tr", has_text="cleanup")
    assert row.get_by_role("button").count() == 0
    assert "set aside" in page.locator("table.letters").inner_text()
    assert len(served.redriven) == before  # nothing was sent


def test_a_stored_script_never_runs(page: Any, served: Served) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path in ("/", "/?q=storm", f"/article/{webdata.HOSTILE_ID}"):
        page.goto(served.url + path)
        page.wait_for_load_state("load")
        assert page.title() != webdata.SCRIPT_MARK
        assert page.evaluate(f"typeof window.{webdata.SCRIPT_MARK.replace('-', '_')}") == "undefined"
        assert page.locator("script:not([src])").count() == 0  # no inline script element made it into the DOM
    assert "<script>" in page.locator("article.story").inner_text()  # shown as text, for the reader to see
    assert not errors


def test_every_page_is_usable_by_keyboard_on_a_phone(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        for path in ("/", f"/article/{webdata.SEED_ID}", "/pipeline"):
            page.goto(served.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375 + 1, path  # no sideways scrolling
            assert page.locator("h1").count() == 1, path
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"
            unlabeled = page.evaluate(
                "[...document.querySelectorAll('input:not([type=hidden]), select')]"
                ".filter(e => !e.labels.length && !e.getAttribute('aria-label')).length"
            )
            assert unlabeled == 0, path
    finally:
        context.close()
