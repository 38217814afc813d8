"""Endpoint: an IP address and a port, and the one converter every TCP call uses.

Every call that takes an endpoint also takes a ``(host, port)`` tuple whose
host is a *literal* address (``"127.0.0.1"``, ``"::1"``): name resolution may
block, so it only happens in :func:`corosio_py.resolve`, off the reactor.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, NamedTuple

__all__ = ("Endpoint", "as_endpoint", "from_sockaddr", "to_sockaddr")


class Endpoint(NamedTuple):
    """An IP address and a TCP port.

    ``address`` is an :class:`ipaddress.IPv4Address` or
    :class:`ipaddress.IPv6Address`; ``port`` an int in ``0..65535``.
    ``str()`` gives ``"127.0.0.1:80"`` or ``"[::1]:80"``.
    """

    address: IPv4Address | IPv6Address
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        """``socket.AF_INET`` or ``socket.AF_INET6``, from the address."""
        return socket.AF_INET6 if self.address.version == 6 else socket.AF_INET

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _port(value: object) -> int:
    # bool is an int subclass; accepting True as port 1 would hide a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"port must be an int, not {type(value).__name__}")
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"port {value} is out of range 0..65535")
    return value


def _address(value: object) -> IPv4Address | IPv6Address:
    if isinstance(value, (IPv4Address, IPv6Address)):
        return value
    if isinstance(value, str):
        try:
            return ip_address(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a literal IP address (use corosio_py.resolve() for names)"
            ) from None
    raise TypeError(
        f"address must be an IPv4Address, IPv6Address or str, not {type(value).__name__}"
    )


def as_endpoint(value: object) -> Endpoint:
    """Return ``value`` as a validated :class:`Endpoint`.

    Accepts an :class:`Endpoint` (its fields are checked, so one built with a
    string address is normalised) or a ``(host, port)`` tuple with a literal
    address.

    :raises TypeError: for anything else, or a non-int port.
    :raises ValueError: for a host that is not a literal address, or a port
        outside ``0..65535``.
    """
    if isinstance(value, tuple) and len(value) == 2:
        # Endpoint is a tuple too: one path validates both.
        host, port = value
        address = _address(host)
        checked_port = _port(port)
        if type(value) is Endpoint and address is host:
            return value
        return Endpoint(address, checked_port)
    raise TypeError(
        f"expected an Endpoint or a (host, port) tuple, not {type(value).__name__}"
    )


def to_sockaddr(endpoint: Endpoint) -> tuple[Any, ...]:
    """The address tuple the ``socket`` module expects for ``endpoint``."""
    if endpoint.address.version == 6:
        return (str(endpoint.address), endpoint.port, 0, 0)
    return (str(endpoint.address), endpoint.port)


def from_sockaddr(sockaddr: Any) -> Endpoint:
    """Convert what ``getsockname``/``getpeername``/``accept`` return."""
    host = sockaddr[0]
    scope = sockaddr[3] if len(sockaddr) == 4 else 0
    if scope and "%" not in host:
        host = f"{host}%{scope}"
    return Endpoint(ip_address(host), sockaddr[1])
