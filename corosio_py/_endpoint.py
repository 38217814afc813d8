"""Endpoint: an IP address and a port, and the one converter every TCP call uses.

Every call that takes an endpoint also takes a ``(host, port)`` tuple whose
host is a *literal* address (``"127.0.0.1"``, ``"::1"``): name resolution may
block, so it only happens in :func:`corosio_py.resolve`, off the reactor.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final, NamedTuple, TypeVar

__all__ = (
    "IP",
    "Addressing",
    "Endpoint",
    "as_endpoint",
    "from_sockaddr",
    "from_sockaddr_cached",
    "sockaddr_of",
    "to_sockaddr",
    "to_sockaddr_cached",
)


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


#: Bound on the conversion caches below; a full cache is simply emptied.
_CACHE_LIMIT = 1024
#: Datagram sockets convert the same few peers on every send/receive; parsing
#: an address (``ip_address``, ``str``) costs more than the system call.
#: Plain dicts: a lookup and a store are each atomic (also without the GIL),
#: and a lost store or a concurrent clear only costs a recomputation.
_FROM_CACHE: dict[Any, Endpoint] = {}
_TO_CACHE: dict[Endpoint, tuple[Any, ...]] = {}


V = TypeVar("V")


def _remember(cache: dict[Any, V], key: Any, value: V) -> V:
    """Store ``value`` in one of the caches here (emptied when full); the
    lookups stay inline in their callers, which are per-datagram paths."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def from_sockaddr_cached(sockaddr: Any) -> Endpoint:
    """:func:`from_sockaddr`, remembered for the busiest peers."""
    endpoint = _FROM_CACHE.get(sockaddr)
    if endpoint is None:
        endpoint = _remember(_FROM_CACHE, sockaddr, from_sockaddr(sockaddr))
    return endpoint


#: Endpoint objects already validated and converted, keyed by ``id``: a
#: datagram server sends to the very object its receive returned, and hashing
#: an :class:`Endpoint` runs ``ipaddress``'s Python-level ``__hash__``.  The
#: value holds the endpoint, so its id cannot be reused while it is cached
#: (the ``is`` check rejects a stale entry all the same).  Same dict rules as
#: above.
_SEEN: dict[int, tuple[Endpoint, tuple[Any, ...]]] = {}


def sockaddr_of(value: object) -> tuple[Any, ...]:
    """Validate ``value`` (:func:`as_endpoint`) and convert it
    (:func:`to_sockaddr`), remembering the endpoint objects seen last."""
    entry = _SEEN.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    endpoint = as_endpoint(value)
    sockaddr = to_sockaddr_cached(endpoint)
    if endpoint is value:  # only validated Endpoint objects are remembered
        _remember(_SEEN, id(value), (endpoint, sockaddr))
    return sockaddr


def to_sockaddr_cached(endpoint: Endpoint) -> tuple[Any, ...]:
    """:func:`to_sockaddr`, remembered for the busiest peers."""
    sockaddr = _TO_CACHE.get(endpoint)
    if sockaddr is None:
        sockaddr = _remember(_TO_CACHE, endpoint, to_sockaddr(endpoint))
    return sockaddr


class Addressing:
    """How one kind of endpoint converts: IP endpoints or local paths.

    The socket bases are written once against this interface; each concrete
    socket class names its addressing (:data:`IP`, or the local one).
    """

    __slots__ = ()

    #: What the error messages call an endpoint of this kind.
    what = "an endpoint"

    def check(self, value: object) -> Any:
        """The validated, normalised endpoint (``TypeError``/``ValueError``)."""
        raise NotImplementedError

    def family(self, endpoint: Any) -> int:
        """The address family a socket for ``endpoint`` needs."""
        raise NotImplementedError

    def to_sockaddr(self, endpoint: Any) -> Any:
        """What the ``socket`` module takes for ``endpoint``."""
        raise NotImplementedError

    def from_sockaddr(self, sockaddr: Any) -> Any:
        """The endpoint for what the ``socket`` module returned."""
        raise NotImplementedError

    def sockaddr_of(self, value: object) -> Any:
        """``to_sockaddr(check(value))``: what a send to ``value`` passes to
        the ``socket`` module (``TypeError``/``ValueError`` as :meth:`check`)."""
        return self.to_sockaddr(self.check(value))


class _IPAddressing(Addressing):
    """:class:`Endpoint` values (an IP address and a port)."""

    __slots__ = ()

    what = "an Endpoint or a (host, port) tuple"

    def check(self, value: object) -> Endpoint:
        return as_endpoint(value)

    def family(self, endpoint: Endpoint) -> int:
        return endpoint.family

    def to_sockaddr(self, endpoint: Endpoint) -> tuple[Any, ...]:
        return to_sockaddr_cached(endpoint)

    def from_sockaddr(self, sockaddr: Any) -> Endpoint:
        return from_sockaddr_cached(sockaddr)

    def sockaddr_of(self, value: object) -> tuple[Any, ...]:
        return sockaddr_of(value)


#: The addressing of TCP and UDP sockets.
IP: Final[Addressing] = _IPAddressing()
