"""Rendering with Jinja2, autoescaped, and the headers every page carries.

The Content-Security-Policy allows scripts and styles from this origin only: even if some stored
text ever slipped through escaping, a browser would not run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
