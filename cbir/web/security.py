"""Who may talk to the server, and which requests may change anything.

- Bound to a loopback address, the server answers only requests whose Host is
  that address or ``localhost`` (a web page cannot reach it by DNS rebinding).
- Bound to any other address it needs an access token: ``Authorization: Bearer
  TOKEN``, or ``?token=TOKEN`` once, which sets an HttpOnly, SameSite=Strict cookie.
- A request that changes anything (POST) is refused when the browser says it
  comes from another site (``Sec-Fetch-Site``, ``Origin``), and every action
  that moves files also needs the per-server form token (``csrf_token`` field or
  ``X-CSRF-Token`` header) that only the server's own pages and ``/api/session`` show.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOKEN_COOKIE = "cbir_token"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Guard:
    host: str
    token: str | None = None  # required on every request when set
    csrf: str = field(default_factory=new_token)

    def host_allowed(self, host_header: str) -> bool:
        """Without a token only loopback names reach the server (DNS rebinding); with one, any name."""
        if self.token is not None:
            return True
        name = urlsplit(f"//{host_header}").hostname or ""
        return is_loopback(name) or name == self.host.strip("[]")

    def token_ok(self, authorization: str | None, cookie: str | None, query: str | None) -> bool:
        if self.token is None:
            return True
        offered = [query, cookie]
        if authorization and authorization.lower().startswith("bearer "):
            offered.append(authorization[7:].strip())
        return any(o is not None and hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)

    @staticmethod
    def cross_site(method: str, host_header: str, origin: str | None, fetch_site: str | None) -> bool:
        """A changing request a browser says came from another site."""
        if method in SAFE_METHODS:
            return False
        if fetch_site in ("cross-site", "same-site"):
            return True
        if origin:
            return origin == "null" or urlsplit(origin).netloc.lower() != host_header.lower()
        return False

    def csrf_ok(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())
