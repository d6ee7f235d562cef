"""The pages: ``/`` (search), ``/article/{id}`` (or ``/article?id=``), ``/pipeline``; ``POST`` for login, re-drive and set aside.

No ``from __future__ import annotations``: FastAPI reads the annotations.
"""

import asyncio
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from faststream.exceptions import IncorrectState
from sqlalchemy import func, select

from newsflow_shared import RejectedInput, redrive_record
from newsflow_shared.db.tables import articles
from newsflow_shared.lag import stage_inputs
from newsflow_shared.taxonomy import load_taxonomy

from ..api import _bound
from ..dead_letters import REDRIVE_AT_ONCE
from ..repository import RELEVANCE_WINDOW, Query, search_words
from . import charts
from .auth import COOKIE, FORM_COOKIE, SESSION_SECONDS, form_token, form_token_matches, safe_next, same_origin
from .browse import browse
from .changes import changes, folded
from .highlight import marked, snippet, word_pattern
from .languages import language_name
from .pipeline import MINUTES, stage_views
from .templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
SHOWN_REVISIONS = 20  # on an article's page, the newest; the rest through /articles/{id}/revisions
SHOWN_COPIES = 50  # an article's near-duplicates on its page, the first found; the rest through a search


class _LoginNeeded(Exception):
    pass


def _guard(request: Request) -> None:
    if not request.app.state.web_auth.allowed(request):
        raise _LoginNeeded


def _login_redirect(request: Request) -> Response:
    # The path as it was sent: request.url.path is decoded, so an id's "%41" came back as "A" and its "%2e%2e" as a
    # ".." that the browser then resolved, after signing in, to another page.
    path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def _problem(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "problem.html", {"title": "Not possible", "message": message}, status=status)


@router.get("/")
async def search_page(request: Request) -> Response:
    try:
        _guard(request)
    except _LoginNeeded:
        return _login_redirect(request)
    params = request.query_params
    try:
        query = _query(params)
    except (HTTPException, ValueError) as error:
        return _problem(request, 422, getattr(error, "detail", None) or str(error))
    repo = request.app.state.repository
    started = time.perf_counter()
    try:
        page, counts = await browse(repo, query)
    except ValueError as error:  # a cursor this page did not make
        return _problem(request, 422, str(error))
    pattern = word_pattern(search_words(query.q))
    results = [
        {
            "article": a,
            "title": marked(a.title or "(no title)", pattern),
            "snippet": snippet(a.text, pattern),
            "language": language_name(a.language),
            "top_topic": a.topics[0].label if a.topics else None,
        }
        for a in page.items
    ]
    kept = {k: v for k, v in params.items() if k != "cursor" and v}
    taxonomy = load_taxonomy()
    chosen_topic = taxonomy.topics.get(query.topic) if query.topic else None
    return render(
        request,
        "search.html",
        {
            "title": f"Search: {query.q}" if query.q else "Articles",
            "query": query,
            "params": kept,
            "results": results,
            "facets": counts,
            "next_cursor": page.next_cursor,
            "first_page": bool(params.get("cursor")),
            "chosen_topic": chosen_topic,
            "language_name": language_name,
            "url": lambda **changes: _url("/", kept, changes),
            "month_range": _month_range,
            "relevance_window": RELEVANCE_WINDOW,
            "server_ms": (time.perf_counter() - started) * 1000,
        },
    )


@router.get("/article")
async def article_page_by_query(request: Request, id: str = "") -> Response:
    """The same page for the ids a browser cannot keep in a path (a ``.`` or ``..`` segment): see
    :func:`~newsflow_storage.web.templating.article_href`. Without an id, the article page's own answer (a login
    first, then "no such article"), not FastAPI's JSON."""
    return await article_page(request, id)


@router.get("/article/{article_id:path}")
async def article_page(request: Request, article_id: str) -> Response:
    try:
        _guard(request)
    except _LoginNeeded:
        return _login_redirect(request)
    repo = request.app.state.repository
    article = await repo.get(article_id)
    if article is None:
        return _problem(request, 404, f"There is no stored article with the id {article_id!r}.")
    async with repo.engine.connect() as connection:
        copies = list(
            await connection.execute(
                select(articles.c.id, articles.c.title, articles.c.duplicate_score)
                .where(articles.c.duplicate_of == article.id)
                .order_by(articles.c.stored_at)
                .limit(SHOWN_COPIES)
            )
        )
        # A wire story is copied by hundreds: say how many, and link to the search that lists them all.
        copy_count = (
            (
                await connection.execute(
                    select(func.count()).select_from(articles).where(articles.c.duplicate_of == article.id)
                )
            ).scalar_one()
            if len(copies) == SHOWN_COPIES
            else len(copies)
        )
        original = None
        if article.duplicate_of:
            original = (
                await connection.execute(
                    select(articles.c.id, articles.c.title).where(articles.c.id == article.duplicate_of)
                )
            ).first()
    return render(
        request,
        "article.html",
        {
            "title": article.title or article.id,
            "article": article,
            "paragraphs": [p for p in article.text.split("\n\n") if p.strip()],
            # In a thread: the diff of a long text takes a while, and this loop also serves the stage's Kafka
            # consumer, whose heartbeats must not wait for a page.
            "changes": await asyncio.to_thread(
                lambda: folded(changes(article.arrived_text, article.text, article.removed))
            )
            if article.arrived_text
            else None,
            "language": language_name(article.language),
            "score_bar": charts.score_bar,
            "copies": copies,
            "copy_count": copy_count,
            "all_copies": "/?" + urlencode({"duplicate_of": article.id}),
            "original": original,
            "original_id": article.duplicate_of,
            # The newest few: a live blog re-sent with each update has thousands (the API pages through them all).
            "revisions": await repo.revisions(article.id, after=max(0, article.revision - SHOWN_REVISIONS)),
            "taxonomy": load_taxonomy(),
        },
    )


@router.get("/pipeline")
async def pipeline_page(request: Request) -> Response:
    try:
        _guard(request)
    except _LoginNeeded:
        return _login_redirect(request)
    state = request.app.state
    views = await stage_views(state.repository, state.dead_letters, state.lag_probe, state.web_settings)
    token, new_token = form_token(request)
    page = render(
        request,
        "pipeline.html",
        {
            "title": "Pipeline",
            "stages": views,
            "kinds": await state.dead_letters.kinds(),
            "letters": await state.dead_letters.recent(50),
            "charts": charts,
            "hour_start": time.time() - MINUTES * 60,
            "hour_seconds": MINUTES * 60,
            "form_token": token,
            "redrive_at_once": REDRIVE_AT_ONCE,
            # Counts only: any other text there would be shown as this page's own notice.
            "done": _count(request.query_params.get("redriven")),
            "refused": _count(request.query_params.get("refused")),
            "set_aside": _count(request.query_params.get("set_aside")),
            "keep_days": state.web_settings.storage_dead_letter_keep_days,
        },
    )
    if new_token:
        page.set_cookie(
            FORM_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/pipeline",
        )
    return page


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() and len(value) < 10 else None


@router.post("/pipeline/redrive")
async def redrive(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    letter: Annotated[str | None, Form()] = None,
    stage: Annotated[str | None, Form()] = None,
    error: Annotated[str | None, Form()] = None,
) -> Response:
    """Send dead letters back to the topic their stage consumed them from; mark their rows re-driven."""
    state = request.app.state
    if (refusal := _form_refusal(request, csrf, "Re-driving")) is not None:
        return refusal
    chosen = _chosen(letter, stage, error, "re-drive")
    if isinstance(chosen, str):
        return _problem(request, 422, chosen)
    ids = [chosen] if isinstance(chosen, int) else await state.dead_letters.waiting_ids(*chosen)
    sent, refused, failure = await _send_back(state, ids)
    if isinstance(failure, IncorrectState):  # FastStream's "please connect broker first": consumers not started
        waiting = state.watch.not_consuming or "not connected yet"
        return _problem(
            request,
            503,
            f"Storage has not reached Kafka yet ({waiting}): nothing was re-driven, and the letters still wait."
            " Try again once /ready answers 200.",
        )
    if failure is not None:
        return _problem(
            request,
            503,
            f"Kafka did not take every dead letter ({type(failure).__name__}: {failure}). {len(sent)} were re-driven;"
            " the others wait to be re-driven again.",
        )
    return RedirectResponse(f"/pipeline?{urlencode({'redriven': len(sent), 'refused': refused})}", status_code=303)


@router.post("/pipeline/set-aside")
async def set_aside(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    letter: Annotated[str | None, Form()] = None,
    stage: Annotated[str | None, Form()] = None,
    error: Annotated[str | None, Form()] = None,
) -> Response:
    """Mark waiting dead letters as set aside: nothing to re-drive (junk input, or pushed again from the source).

    They stop counting as waiting and are deleted with the re-driven ones, ``STORAGE_DEAD_LETTER_KEEP_DAYS`` later.
    """
    if (refusal := _form_refusal(request, csrf, "Setting dead letters aside")) is not None:
        return refusal
    letters = request.app.state.dead_letters
    chosen = _chosen(letter, stage, error, "set aside")
    if isinstance(chosen, str):
        return _problem(request, 422, chosen)
    if isinstance(chosen, int):
        count = await letters.set_aside(letter_id=chosen)
    else:
        count = await letters.set_aside(kind=chosen)
    return RedirectResponse(f"/pipeline?{urlencode({'set_aside': count})}", status_code=303)


def _chosen(letter: str | None, stage: str | None, error: str | None, doing: str) -> int | tuple[str, str] | str:
    """What a pipeline form names: one letter's number, or a (stage, error) kind; else why not, for a 422."""
    if letter is not None:
        if (letter_id := _letter_id(letter)) is None:
            return f"{letter[:20]!r} is not the number of a dead letter."
        return letter_id
    if stage and error:
        return (stage, error) if _a_kind(stage, error) else "No dead letters are of that stage and error."
    return f"Say which dead letter to {doing}, or which stage and error."


def _a_kind(stage: str, error: str) -> bool:
    """Whether a form's stage and error could name a kind of dead letter: within their columns and without NUL
    (PostgreSQL refuses one in a query). Checked after the sign-in, like :func:`_letter_id`."""
    return len(stage) <= 64 and len(error) <= 200 and "\x00" not in stage + error


def _letter_id(value: str) -> int | None:
    """A dead letter's row number from a form, within the column's range (past it the driver raised). Read here,
    after the sign-in check, not by FastAPI: its refusal was JSON, before the login, for a browser's form."""
    value = value.strip()
    if len(value) > 10 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 1 <= number <= 2**31 - 1 else None


def _form_refusal(request: Request, csrf: str, doing: str) -> HTMLResponse | None:
    """The page's answer when a form that changes dead letters may not: not signed in, or not this page's form."""
    if not request.app.state.web_auth.allowed(request):
        return _problem(request, 401, f"{doing} needs the API token: sign in first.")
    if not same_origin(request) or not form_token_matches(request, csrf):
        return _problem(request, 403, "This form did not come from this page: reload the pipeline page and try again.")
    return None


async def _send_back(state: Any, ids: list[int]) -> tuple[list[int], int, Exception | None]:
    """Send the letters back: those sent, how many could not be (already re-driven, or cut short), and what Kafka
    said when it took not all. They are claimed first and the ones not sent given back: read, sent and only then
    marked, a double click or a reload sent them all again, and a send that failed half-way left the sent ones
    waiting, to be sent again by the next try."""
    letters = state.dead_letters
    inputs = set(stage_inputs(state.web_settings).values())
    at = datetime.now(UTC)
    claimed = await letters.claim(ids, at)
    refused, sent = len(ids) - len(claimed), []
    pending: list[tuple[int, Any]] = []
    failure: Exception | None = None
    try:
        try:
            for letter_id in claimed:
                letter = await letters.letter(letter_id)
                try:
                    record = redrive_record(letter, inputs=inputs) if letter is not None else None
                except RejectedInput:  # cut short (only its source can send it again), or not from a stage's input
                    record = None
                if record is None:
                    refused += 1
                    continue
                confirmation = await state.broker.publish(
                    record.value, record.topic, key=record.key, headers=record.headers, no_confirm=True
                )
                pending.append((letter_id, confirmation))
        except Exception as error:  # the broker: what was not handed over waits again
            failure = error
        outcomes = await asyncio.gather(*(_confirmed(c) for _, c in pending), return_exceptions=True)
        for (letter_id, _), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, Exception):
                failure = failure or outcome
            else:
                sent.append(letter_id)
    finally:
        # Also when the request is cancelled (a shutdown in the middle of 10,000): what Kafka did not confirm waits
        # again, rather than stay marked re-driven for good (killed outright, the claim lapses: REDRIVE_CLAIM).
        await asyncio.shield(letters.finish(claimed, sent, at))
    return sent, refused, failure


async def _confirmed(confirmation: Any) -> None:
    if confirmation is not None:
        await confirmation


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(
        request,
        "login.html",
        {"title": "Sign in", "next": safe_next(request.query_params.get("next")), "failed": False},
    )


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    auth = request.app.state.web_auth
    if not auth.required:
        return RedirectResponse(safe_next(next), status_code=303)
    if not same_origin(request):
        failed = "This sign-in did not come from this page: open the page again and sign in there."
        context = {"title": "Sign in", "next": safe_next(next), "failed": failed}
        return render(request, "login.html", context, status=403)
    if not auth.token_matches(token):
        context = {"title": "Sign in", "next": safe_next(next), "failed": "That token is not the one configured."}
        return render(request, "login.html", context, status=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        auth.session_value(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=SESSION_SECONDS,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _query(params: Any) -> Query:
    """The page's parameters, checked like the API checks its own."""
    for name, value in params.items():
        if "\x00" in value:
            raise ValueError(f"The parameter {name!r} contains a NUL character.")
        if len(value) > 1000:
            raise ValueError(f"The parameter {name!r} is longer than 1,000 characters.")
    topic = params.get("topic") or None
    if topic is not None and topic not in load_taxonomy().topics:
        raise ValueError(f"{topic!r} is not an IPTC Media Topic code such as medtop:16000000.")
    sort = params.get("sort") or "date"
    if sort not in {"date", "relevance"}:
        raise ValueError("sort is 'date' or 'relevance'.")
    duplicates = params.get("duplicates") or "include"
    if duplicates not in {"include", "exclude", "only"}:
        raise ValueError("duplicates is 'include', 'exclude' or 'only'.")
    query = Query(
        q=params.get("q") or None,
        topic=topic,
        language=params.get("language") or None,
        source=params.get("source") or None,
        published_from=_bound(params.get("from") or None, end=False),
        published_to=_bound(params.get("to") or None, end=True),
        duplicates=duplicates,  # type: ignore[arg-type]
        duplicate_of=params.get("duplicate_of") or None,
        limit=PAGE_SIZE,
        cursor=params.get("cursor") or None,
        sort=sort,  # type: ignore[arg-type]
    )
    return replace(query, sort="date") if query.sort == "relevance" and not search_words(query.q) else query


def _url(path: str, kept: dict[str, str], changes: dict[str, Any]) -> str:
    """This page's URL with some parameters changed (None removes one); a new filter starts at page one."""
    merged = {**kept, **{k.rstrip("_"): v for k, v in changes.items()}}
    merged = {k: str(v) for k, v in merged.items() if v not in (None, "")}
    return path + ("?" + urlencode(merged) if merged else "")


def _month_range(month: str) -> tuple[str, str]:
    """'2026-03' → ('2026-03-01', '2026-03-31'): the from and to of a month facet."""
    first = date.fromisoformat(month + "-01")
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return first.isoformat(), last.isoformat()
