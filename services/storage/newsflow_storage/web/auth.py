"""Who may see the web page and who may change something through it.

Browsers do not send ``Authorization`` headers by themselves, so the page accepts the API's token in
two ways: the same bearer header (scripts, tests), or a session cookie set by ``POST /login``. The
cookie holds an HMAC of the token, never the token, and is ``HttpOnly`` and ``SameSite=Strict``.

The cookie is signed with the time it was issued and honoured for :data:`SESSION_SECONDS` from then, on the
server too: a copied cookie stops working, where one HMAC of the token alone worked until the token changed.

Every POST must also carry a form token and, when the browser says where it comes from, come from this same
origin: another site can neither read the form token nor make the browser send a same-site request, so a re-drive
cannot be forged. GETs never change state. The form token is a random value the page puts both in its form and in
a cookie of its own (``SameSite=Strict``), and a POST must bring the two alike: any replica can check that with no
secret of its own, where a key of each process's own made a form served by one replica refused by the next, and
a key derived from shared settings could be worked out from their defaults.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from fastapi import Request

COOKIE = "newsflow_session"
SESSION_SECONDS = 12 * 3600


FORM_COOKIE = "newsflow_form"
_CLOCK_SKEW_SECONDS = 60  # a replica whose clock runs ahead issues cookies "from the future" by this much


class WebAuth:
    def __init__(self, token: str | None) -> None:
        self.token = token

    @property
    def required(self) -> bool:
        return self.token is not None

    def session_value(self, issued: int | None = None) -> str:
        """``<issued>.<HMAC of the token and that time>``: what the cookie holds."""
        assert self.token is not None
        issued = int(time.time()) if issued is None else issued
        signed = hmac.new(self.token.encode(), f"newsflow-web-session|{issued}".encode(), hashlib.sha256)
        return f"{issued}.{signed.hexdigest()}"

    def _session_holds(self, cookie: str) -> bool:
        issued, _, _ = cookie.partition(".")
        if not (issued.isascii() and issued.isdigit()) or len(issued) > 12:  # "²" is a digit int() refuses
            return False
        if not -_CLOCK_SKEW_SECONDS <= time.time() - int(issued) < SESSION_SECONDS:
            return False
        return secrets.compare_digest(cookie.encode(), self.session_value(int(issued)).encode())

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
        return bool(cookie) and self._session_holds(cookie)


def form_token(request: Request) -> tuple[str, bool]:
    """The form token for this browser: the one its cookie holds, else a new one; and whether it is new (then the
    page sets the cookie)."""
    held = request.cookies.get(FORM_COOKIE, "")
    if len(held) == 32 and all(c in "0123456789abcdef" for c in held):
        return held, False
    return secrets.token_hex(16), True


def form_token_matches(request: Request, candidate: str | None) -> bool:
    """The form's token is the cookie's: only a page of this site, read by this browser, could have put it there."""
    held = request.cookies.get(FORM_COOKIE, "")
    return bool(held) and candidate is not None and secrets.compare_digest(candidate.encode(), held.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site: Sec-Fetch-Site where it sends one, which no
    page can set or forge; else Origin, against the Host asked for or the one a proxy says it forwarded.

    Sec-Fetch-Site is taken at its word: behind a proxy that passes on a Host of its own (``storage:8080``), Origin
    never matched it, and no one could sign in, told that the token was wrong. A cross-site form cannot set a header,
    X-Forwarded-Host included.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    return urlsplit(origin).netloc in {request.headers.get("host", ""), forwarded} - {""}


def safe_next(target: str | None) -> str:
    """Only a path on this site: ``/login?next=https://evil`` must not become an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
