"""Who is calling trainq web, and whether a request may change anything.

Credentials come only from the environment: ``TRAINQ_WEB_BASIC_AUTH`` (``user:password`` pairs)
and ``TRAINQ_WEB_TOKEN`` (``Authorization: Bearer``). With neither set the server answers only
on a loopback address and only to loopback host names (no DNS rebinding). Requests that change
something are refused when a browser says they come from another site (``Sec-Fetch-Site``,
``Origin``, ``Referer``: OWASP's "verify origin with standard headers"), and browser-sendable bodies
(forms, text) a browser sends must carry the CSRF token of the page's cookie. A request without
``Sec-Fetch-Site`` and ``Origin`` is not a browser's (curl, scripts), nor is a bearer-authenticated one
(no browser adds that header by itself): it needs no token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from trainq.errors import InvalidInput
from trainq.ops.flower import check_basic_auth, is_loopback
from trainq.settings import Settings

CSRF_COOKIE = "trainq_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: Paths answered without credentials: the load balancer's health check and the static files.
OPEN_PATHS = ("/api/v1/health", "/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Content types a page of another site can post without asking first (the CORS-safelisted ones).
BROWSER_BODIES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
#: The Fetch Metadata header naming where a browser's request comes from, and its values for this site.
FETCH_SITE = "sec-fetch-site"
OWN_SITE = frozenset({"same-origin", "none"})
REALM = 'Basic realm="trainq", charset="UTF-8"'


@dataclass(frozen=True)
class Caller:
    """The sender of a request: a basic-auth user, the bearer token, or an anonymous local user."""

    name: str
    authenticated: bool = False
    bearer: bool = False

    @property
    def via(self) -> str:
        """How audit reasons name the caller: ``via web by alice``."""
        return f"via web by {self.name}"


class Auth:
    """The credentials configured for trainq web, and the check of one request against them."""

    def __init__(self, settings: Settings) -> None:
        basic = settings.web_basic_auth.get_secret_value() if settings.web_basic_auth else ""
        self.users = (
            dict(pair.split(":", 1) for pair in check_basic_auth(basic, "TRAINQ_WEB_BASIC_AUTH").split(","))
            if basic
            else {}
        )
        self.token = settings.web_token.get_secret_value() if settings.web_token else ""

    @property
    def enabled(self) -> bool:
        """True when callers must authenticate."""
        return bool(self.users or self.token)

    def caller(self, authorization: str) -> Caller | None:
        """The caller the ``Authorization`` header proves, or None (anonymous when auth is off)."""
        if not self.enabled:
            return Caller("local")
        scheme, _, value = authorization.partition(" ")
        if (
            scheme.lower() == "bearer"
            and self.token
            and hmac.compare_digest(value.encode(), self.token.encode())
        ):
            return Caller("token", authenticated=True, bearer=True)
        if scheme.lower() == "basic" and self.users:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            expected = self.users.get(user)
            if expected is not None and _same(password, expected):
                return Caller(user, authenticated=True)
        return None


def _same(given: str, expected: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_address(settings: Settings, address: str) -> None:
    """Refuse to serve on a non-loopback ``address`` with no credentials (the ``trainq flower`` rule)."""
    if not is_loopback(address) and not Auth(settings).enabled:
        raise InvalidInput(
            f"refusing to serve trainq web on {address or 'every interface'} without authentication: "
            "set TRAINQ_WEB_BASIC_AUTH=user:password or TRAINQ_WEB_TOKEN in the environment"
        )


class AuthMiddleware:
    """Authenticates every request but the open paths; puts the ``Caller`` in ``request.state``."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if not self.auth.enabled and not _loopback_host(headers.get("host", "")):
            await _plain(send, 403, "this unauthenticated server answers only to localhost names")
            return
        caller = self.auth.caller(headers.get("authorization", ""))
        if caller is None and not path.startswith(OPEN_PATHS):
            await _plain(send, 401, "authentication required", {"www-authenticate": REALM})
            return
        scope.setdefault("state", {})["caller"] = caller or Caller("anonymous")
        await self.app(scope, receive, send)


async def _plain(send: Send, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"text/plain; charset=utf-8")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": text.encode()})


def _loopback_host(host: str) -> bool:
    """True for a ``Host`` header naming this machine (``localhost:5580``, ``127.0.0.1``, ``[::1]``)."""
    name = urlsplit(f"//{host}").hostname or ""
    return is_loopback(name)


def caller_of(request: Request) -> Caller:
    """The request's caller (set by ``AuthMiddleware``)."""
    caller: Caller = request.state.caller
    return caller


def csrf_token(request: Request) -> str:
    """The page's CSRF token: the cookie's, or a new one the page response sets."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return str(token)


async def guard(request: Request) -> None:
    """Refuse a change from another site, or a browser-sendable body a browser sent without the CSRF token."""
    if request.method in SAFE_METHODS:
        return
    if cross_site(request):
        raise HTTPException(403, "cross-site request refused")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in BROWSER_BODIES or caller_of(request).bearer or not from_browser(request):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and kind != "text/plain":
        sent = str((await request.form()).get(CSRF_FIELD) or "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not _same(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def cross_site(request: Request) -> bool:
    """True when the browser says the request comes from another site or origin (a subdomain too)."""
    fetch_site = request.headers.get(FETCH_SITE)
    if fetch_site is not None and fetch_site not in OWN_SITE:
        return True
    source = request.headers.get("origin") or request.headers.get("referer")
    return bool(source) and (source == "null" or urlsplit(source).netloc != request.headers.get("host"))


def from_browser(request: Request) -> bool:
    """True when a browser sent the request: every current one names the sending site on a change
    (``Sec-Fetch-Site``, ``Origin``); curl, requests and other programs send neither."""
    return FETCH_SITE in request.headers or "origin" in request.headers
