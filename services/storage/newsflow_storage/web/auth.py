"""Who may see the web page and who may change something through it.

Browsers do not send ``Authorization`` headers by themselves, so the page accepts the API's token in
two ways: the same bearer header (scripts, tests), or a session cookie set by ``POST /login``. The
cookie holds an HMAC of the token, never the token, and is ``HttpOnly`` and ``SameSite=Strict``.

Every POST must also carry a form token (an HMAC of a per-process secret) and, when the browser
says where it comes from, come from this same origin: another site can neither read the form
token nor make the browser send a same-site request, so a re-drive cannot be forged. GETs never
change state.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

COOKIE = "newsflow_session"


class WebAuth:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._secret = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self.token is not None

    def session_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"newsflow-web-session", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and secrets.compare_digest(candidate.encode(), self.token.encode())

    def allowed(self, request: Request) -> bool:
        """No token configured, or the bearer header or the session cookie proves it."""
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.token_matches(header[7:].strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and secrets.compare_digest(cookie.encode(), self.session_value().encode())

    def form_token(self) -> str:
        return hmac.new(self._secret, b"newsflow-web-form", hashlib.sha256).hexdigest()

    def form_token_matches(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self.form_token().encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Sec-Fetch-Site, then Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def safe_next(target: str | None) -> str:
    """Only a path on this site: ``/login?next=https://evil`` must not become an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
