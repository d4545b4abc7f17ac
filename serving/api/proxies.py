"""Who the client is, for the rate limit and the operator audit: the socket's peer, unless that peer is
a configured reverse proxy (``COURTSIDE_TRUSTED_PROXIES``); then the rightmost ``X-Forwarded-For``
hop that is not itself a trusted proxy (hops to its left were written by the client and prove nothing).

One rule for the whole process: uvicorn's own proxy-header handling is turned off and this middleware
sets ``scope["client"]``, which the rate limiter and ``request.client`` read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Addresses and networks of the reverse proxies whose ``X-Forwarded-For`` is believed."""

    def __init__(self, entries: Iterable[str] = ()):
        self.networks: tuple[Network, ...] = ()
        networks = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"COURTSIDE_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in n for n in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address from the socket's ``peer`` and the ``X-Forwarded-For`` it sent."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        nearest = peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            address = _address(hop)
            if address is None:
                return nearest  # garbage from a trusted proxy: the last address we can vouch for
            if not any(address in n for n in self.networks):
                return str(address)
            nearest = str(address)
        return nearest  # every hop is a trusted proxy: the leftmost one


class ClientAddressMiddleware:
    """Sets ``scope["client"]`` to the client's address by the rule above."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies):
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxies and scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer:
                values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
                host = self.proxies.client(peer[0], ",".join(values) if values else None)
                if host != peer[0]:
                    scope = {**scope, "client": (host, 0)}
        await self.app(scope, receive, send)
