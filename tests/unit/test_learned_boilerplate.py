"""A source's recurring lines are learned from its articles and removed from later ones, across replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from newsflow_cleanup import learned
from newsflow_cleanup.learned import LearnedBoilerplate, forget
from newsflow_shared import CleanArticle, EnrichedArticle, Removal
from newsflow_shared.contracts import MAX_REMOVALS, listed_removals
from newsflow_shared.db import make_engine, upgrade
from newsflow_shared.db.tables import cleanup_source_lines

PROMO = "Follow @DailyPlanet on Bluesky for live updates from the newsroom"


def article(number: int, source: str = "Daily Planet") -> CleanArticle:
    story = f"Story {number} begins with its own first paragraph, which is long enough to be prose and not a menu item at all."
    return CleanArticle(
        id=f"a{number}",
        source=source,
        text=f"{story}\n\nA second paragraph of story {number}, also its own.\n\n{PROMO}",
        language="en",
        language_confidence=1.0,
        content_hash=str(number),
    )


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[LearnedBoilerplate, LearnedBoilerplate]]:
    await upgrade(database_url)
    one, two = make_engine(database_url), make_engine(database_url)
    yield LearnedBoilerplate(one, min_articles=3), LearnedBoilerplate(two, min_articles=3)
    await one.dispose()
    await two.dispose()


async def see(learner: LearnedBoilerplate, item: CleanArticle) -> CleanArticle:
    """What cleanup does with an article: its candidates, then strip, then learn from what is left."""
    lines = learner.candidates(item)
    cleaned = await learner.strip(item)
    await learner.learn(cleaned, lines)
    return cleaned


async def rows_for(learner: LearnedBoilerplate, line: str) -> int:
    async with learner.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(cleanup_source_lines.c.line_hash == learned.line_key(line))
        )
    return int(count or 0)


async def test_a_line_repeated_by_a_source_is_learned_and_removed(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate],
) -> None:
    a, b = replicas
    assert PROMO in (await see(a, article(1))).text
    assert PROMO in (await see(b, article(2))).text
    third = await see(a, article(3))  # the third article of the source: learned (from both replicas)
    assert PROMO not in third.text
    assert third.removed[-1].what == PROMO
    assert third.removed[-1].why == "learned: the same line is in 3 articles from Daily Planet"
    assert "Story 3 begins" in third.text


async def test_a_learned_line_added_to_a_full_list_of_removals_keeps_the_contract_s_bounds(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate],
) -> None:
    """Added after the worker had listed 200 removals and summed up the rest, a learned line made 202 entries (model_copy
    does not validate), and classify dead-lettered the article as malformed."""
    a, _ = replicas
    for number in (1, 2):
        await see(a, article(number))
    ads = [Removal(what="Ad", why="rule: advertisement marker")] * 500
    third = await see(a, article(3).model_copy(update={"removed": listed_removals(ads)}))
    assert PROMO not in third.text
    assert len(third.removed) == MAX_REMOVALS
    assert third.removed[-1].what == "301 more removed paragraphs, 665 characters in all"
    EnrichedArticle.model_validate(third.model_dump())  # what classify reads it as


async def test_a_learned_line_stops_being_counted_so_its_lookup_stays_small(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate],
) -> None:
    """Each lookup counts a line's rows: counted in every article, a source's boilerplate grew a row an article."""
    a, b = replicas
    for number in range(1, 41):
        cleaned = await see(a if number % 2 else b, article(number))
        assert (PROMO in cleaned.text) is (number < 3)
    assert await rows_for(a, PROMO) == 2  # the two articles that taught it; the third on had it removed
    redelivered = await see(b, article(40))
    assert redelivered.removed[-1].why == "learned: the same line is in 3 articles from Daily Planet"
    assert await rows_for(a, "A second paragraph of story 40, also its own.") == 1  # other lines are still counted


async def test_redeliveries_and_other_sources_do_not_count(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate],
) -> None:
    a, _ = replicas
    for _ in range(4):
        await see(a, article(1))  # the same article again and again
    assert PROMO in (await see(a, article(1, source="Other Paper"))).text
    assert PROMO in (await see(a, article(2))).text


async def test_forgetting_resets_a_source(replicas: tuple[LearnedBoilerplate, LearnedBoilerplate]) -> None:
    a, _ = replicas
    for number in range(1, 4):
        await see(a, article(number))
    assert await forget(a.engine, "Daily Planet") > 0
    assert PROMO in (await a.strip(article(9))).text


async def test_a_learned_line_is_removed_in_every_spelling_the_batch_s_candidates_carry(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate],
) -> None:
    """The batch hands its candidates to ``strip_many`` so each short line is hashed once; two spellings of one line
    (case, spacing) share a key but the candidates keep only one of them, and both must still go."""
    a, _ = replicas
    for number in range(1, 4):
        await see(a, article(number))
    shouted = "FOLLOW  @DailyPlanet on Bluesky for live updates from the newsroom"
    later = article(4).model_copy(update={"text": f"{article(4).text}\n\n{shouted}"})
    lines = a.candidates(later)
    assert len(lines) == 3  # both story paragraphs are short too, and one key holds both spellings of the promotion
    async with a.engine.connect() as connection:
        [stripped] = await a.strip_many(connection, [later], [lines])
    assert PROMO not in stripped.text
    assert shouted not in stripped.text
    assert [removal.what for removal in stripped.removed] == [PROMO, shouted]
    assert "A second paragraph of story 4" in stripped.text


def test_a_long_list_offers_only_its_first_and_last_short_lines() -> None:
    """An article of thousands of short lines (a list, a table) must not cost a statement value per line: boilerplate
    sits at the top and the bottom of a page. Choosing the lines needs no database (the engine never connects)."""
    a = LearnedBoilerplate(make_engine("sqlite+aiosqlite://"))
    rows = [f"Row {number} of the table" for number in range(1, 501)]
    listing = article(1).model_copy(update={"text": "\n\n".join(rows)})
    offered = set(a.candidates(listing).values())
    assert len(offered) == 200
    assert {"Row 1 of the table", "Row 100 of the table", "Row 401 of the table", "Row 500 of the table"} <= offered
    assert "Row 101 of the table" not in offered
    assert "Row 400 of the table" not in offered


async def test_learned_lines_are_found_when_a_batch_s_keys_take_several_statements(
    replicas: tuple[LearnedBoilerplate, LearnedBoilerplate], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = replicas
    monkeypatch.setattr(learned, "_KEYS_PER_STATEMENT", 1)  # each key in statements of its own
    sign_off = "Reporting by the Daily Planet newsroom; editing by the night desk"

    def signed(number: int) -> CleanArticle:
        return article(number).model_copy(update={"text": f"{sign_off}\n\n{article(number).text}"})

    for number in range(1, 3):
        assert PROMO in (await see(a, signed(number))).text
    third = await see(a, signed(3))
    assert {removal.what for removal in third.removed} == {PROMO, sign_off}
    assert "Story 3 begins" in third.text
