"""Rendering with Jinja2, autoescaped, and the headers every page carries.

The Content-Security-Policy allows scripts and styles from this origin only: even if some stored
text ever slipped through escaping, a browser would not run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def article_href(article_id: str) -> str:
    """The link to an article's page. An id is any text without spaces, and '/' is common in them, so the page
    lives at ``/article/<id>``; but a browser resolves an id's ``.`` or ``..`` segment before asking, which would
    open another page or none, so those ids are linked as ``/article?id=``."""
    # Only literal dots: quote() writes an id's own "%2e" as "%252e", which no browser resolves.
    if any(segment in {".", ".."} for segment in article_id.split("/")):
        return "/article?id=" + quote(article_id, safe="")
    return "/article/" + quote(article_id, safe="/")


_ENV.globals["article_href"] = article_href

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    auth = request.app.state.web_auth
    html = _ENV.get_template(template).render(
        {"request": request, "signed_in": auth.required and auth.allowed(request), "path": request.url.path, **context}
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)
