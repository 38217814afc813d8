"""connect_any: connect to the first endpoint of a list (or a host name) that
answers."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address
from typing import TYPE_CHECKING

from ._cancel import check_token
from ._context import Executor, IOContext
from ._endpoint import Endpoint, as_endpoint
from ._resolve import resolve
from ._socket import TCPSocket

if TYPE_CHECKING:
    from ._cancel import StopToken

__all__ = ("connect_any",)


def _is_host_port(value: object) -> bool:
    """Whether ``value`` is one ``(host, port)`` pair (not a list of two)."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, str))
        and not isinstance(value[1], bool)
    )


def _is_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


async def _endpoints(endpoints: object, stop_token: StopToken | None) -> list[Endpoint]:
    """The endpoints to try, in order: resolved when given a host name."""
    if _is_host_port(endpoints):
        pair: tuple[str, int | str] = endpoints  # type: ignore[assignment]
        host, port = pair
        if isinstance(port, str) or not _is_literal(host):
            return await resolve(host, port, stop_token=stop_token)
        return [as_endpoint((host, port))]
    if isinstance(endpoints, (str, bytes)) or not isinstance(endpoints, Iterable):
        raise TypeError(
            "endpoints must be a list of Endpoints / (host, port) tuples, or one "
            f"(host, port) tuple, not {type(endpoints).__name__}"
        )
    return [as_endpoint(ep) for ep in endpoints]


async def connect_any(
    ctx: IOContext | Executor,
    endpoints: Iterable[Endpoint | tuple[str, int]] | tuple[str, int | str],
    *,
    stop_token: StopToken | None = None,
) -> TCPSocket:
    """Connect to each endpoint in order; return the first connected socket.

    ``endpoints`` is what :func:`resolve` returns (any iterable of
    :class:`Endpoint` or literal ``(host, port)`` tuples), or one
    ``(host, port)`` tuple whose host is a name: it is resolved first.
    Sockets of failed attempts are closed.

    :raises OSError: the last attempt's error when every attempt fails; each
        error's ``__cause__`` is the attempt before it.
    :raises ValueError: for an empty list, or a bad endpoint.
    :raises TypeError: for a bad context, endpoint or ``stop_token``.
    :raises socket.gaierror: when a host name does not resolve.
    :raises Cancelled: when cancelled (no socket is left open).
    """
    if not isinstance(ctx, (IOContext, Executor)):
        raise TypeError(f"connect_any needs an IOContext or Executor, got {type(ctx).__name__}")
    context = ctx if isinstance(ctx, IOContext) else ctx.context
    check_token(stop_token)
    targets = await _endpoints(endpoints, stop_token)
    if not targets:
        raise ValueError("connect_any needs at least one endpoint")
    previous: OSError | None = None
    for endpoint in targets:
        sock = TCPSocket(context)
        try:
            await sock.connect(endpoint, stop_token=stop_token)
        except OSError as error:
            sock.close()
            error.__cause__ = previous
            previous = error
            continue
        except BaseException:  # Cancelled, a bad stop token: nothing stays open
            sock.close()
            raise
        return sock
    assert previous is not None
    raise previous
