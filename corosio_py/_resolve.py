"""resolve(): getaddrinfo on a helper thread, the result handed back.

Name resolution blocks for as long as DNS takes, so it never runs on a
thread of the context (least of all the reactor): the lookup is a
:class:`~corosio_py._offload.HelperCall`, which runs it on the helper pool
and resumes the task exactly once; a result that arrives after a cancel is
dropped.
"""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING

from ._endpoint import Endpoint, from_sockaddr
from ._endpoint import _port as check_port  # the one port check (TypeError, ValueError)
from ._offload import HelperCall

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("resolve",)

_FAMILIES = (int(socket.AF_INET), int(socket.AF_INET6))


def _getaddrinfo(host: str | None, port: int | str) -> list[Endpoint]:
    """The blocking lookup: TCP endpoints in getaddrinfo's order, no duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    result: list[Endpoint] = []
    for info in infos:
        # Skip families an Endpoint cannot hold (typeshed types getaddrinfo's
        # family as AF_INET | AF_INET6 only, hence the int()).
        if int(info[0]) not in _FAMILIES:
            continue
        endpoint = from_sockaddr(info[4])
        if endpoint not in result:
            result.append(endpoint)
    return result


async def resolve(
    host: str | None, port: int | str, *, stop_token: StopToken | None = None
) -> list[Endpoint]:
    """Look up ``host`` and return its TCP endpoints for ``port``.

    The lookup (``getaddrinfo``) runs on a helper thread, never on a thread
    of the context.  Endpoints keep getaddrinfo's order, without duplicates.
    ``port`` is a number in ``0..65535`` (an int or a string of digits) or a
    service name (``"http"``).

    :raises socket.gaierror: when the name does not resolve (an ``OSError``).
    :raises TypeError: for a non-str host, a port that is neither int nor
        str, or a ``stop_token`` that is not a StopToken.
    :raises ValueError: for a port number outside ``0..65535`` (as
        :class:`Endpoint` and ``connect`` do; getaddrinfo would wrap it).
    :raises Cancelled: when cancelled (the thread's late result is dropped).
    """
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise TypeError(f"port must be an int or str, not {type(port).__name__}")
    if isinstance(port, int):
        check_port(port)
    elif port.isascii() and port.isdigit():
        check_port(int(port))
    lookup = functools.partial(_getaddrinfo, host, port)
    result: list[Endpoint] = await HelperCall(lookup, stop_token)
    return result
