"""Which ``Host`` headers the server answers: a defence against DNS rebinding.

A web page on ``http://evil.example:8000`` can have its name re-pointed at
127.0.0.1 after it has loaded; its scripts then reach a server on this machine
as if it were the page's own origin, and the browser lets them read the
answers. What gives the trick away is the ``Host`` header: the browser still
sends the attacker's name. So the server answers only the names it was bound
as, and refuses any other with 400:

* bound to a loopback address (127.0.0.1, ::1, localhost): 127.0.0.1,
  localhost and [::1], the ways this machine names itself;
* bound to another address: that address (or name);
* bound to every interface (0.0.0.0, ::): localhost, this machine's name, and
  any IP address, since an address typed in a browser is its own origin (the
  trick needs a name the attacker controls);

plus the names given with ``--allow-host NAME`` (e.g. a reverse proxy's public
name), or every name with ``--allow-host '*'``. Ports are not compared.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from fastapi.responses import JSONResponse

from colorkit.errors import ColorkitError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
ANY_HOST = "*"
_WILDCARDS = ("0.0.0.0", "::", "")
#: a host name as it may appear in a Host header (letters, digits, dots, dashes, underscores)
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")


def _address(text: str):
    """The IP address ``text`` names (IPv6 with or without brackets), or None."""
    try:
        return ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    except ValueError:
        return None


def normalise(name: str) -> str | None:
    """A host name or address as it is compared: lower case, an IPv6 address in
    brackets and its shortest form; None when it is neither a name nor an address."""
    address = _address(name)
    if address is not None:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    name = name.lower()
    return name if _NAME.fullmatch(name) else None


def host_of(header: str | None) -> str | None:
    """The host of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), normalised; None when malformed."""
    if not header:
        return None
    host, port = header, ""
    if header.startswith("["):
        end = header.find("]") + 1
        host, port = header[:end], header[end:]
        if not end:
            return None
    elif ":" in header:
        host, port = header.rsplit(":", 1)
        port = ":" + port
    if port and not (port.startswith(":") and port[1:].isdigit()):
        return None
    return normalise(host)


@dataclass(frozen=True)
class AllowedHosts:
    """The host names a server answers (see the module docstring)."""

    names: frozenset[str]
    any_address: bool = False  # any IP address (a server bound to every interface)
    anything: bool = False  # --allow-host '*'

    @classmethod
    def for_address(cls, bound: str, extra=()) -> "AllowedHosts":
        """The names a server bound to ``bound`` answers, plus ``extra`` names."""
        extra = list(extra)
        if ANY_HOST in extra:
            return cls(frozenset(), anything=True)
        names = {normalise(name) for name in extra}
        if None in names:
            bad = next(name for name in extra if normalise(name) is None)
            raise ColorkitError(f"--allow-host takes a host name or an IP address, got {bad!r}")
        address = _address(bound)
        if bound in _WILDCARDS:
            names |= {*LOOPBACK_NAMES, normalise(socket.gethostname())}
            return cls(frozenset(names - {None}), any_address=True)
        if bound.lower() == "localhost" or (address is not None and address.is_loopback):
            names |= set(LOOPBACK_NAMES)
        names.add(normalise(bound))
        return cls(frozenset(names - {None}))

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered."""
        if self.anything:
            return True
        host = host_of(header)
        return host is not None and (host in self.names or (self.any_address and _address(host) is not None))


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not allowed gets 400 and a sentence saying how to allow it."""

    def __init__(self, app, allowed: AllowedHosts):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if self.allowed.allows(header):
            return await self.app(scope, receive, send)
        name = (host_of(header) or header or "(none)")[:100]
        detail = (f"this server does not answer to the host name {name!r} (a defence against DNS rebinding); "
                  f"start it with --allow-host {name} if that name is yours")
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
