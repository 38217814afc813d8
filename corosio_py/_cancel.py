"""StopSource and StopToken: cancel one operation from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import final

__all__ = ("StopSource", "StopToken")


@final
class StopSource:
    """The owner side of a stop request.  Thread-safe.

    ``request_stop()`` runs the callbacks registered on its tokens, once.
    """

    __slots__ = ("_lock", "_stopped", "_callbacks", "_token")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Written once, False -> True, under _lock; read without it by
        # stop_requested as a one-field hint (a stop landing just after the
        # read is delivered through the callbacks, registered under _lock).
        self._stopped = False
        self._callbacks: dict[int, Callable[[], object]] = {}  # (_lock)
        self._token = StopToken(self)

    @property
    def token(self) -> StopToken:
        """The token to hand to operations (``stop_token=``)."""
        return self._token

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called."""
        return self._stopped

    def request_stop(self) -> bool:
        """Request a stop; True if this call made the request (first time)."""
        with self._lock:
            if self._stopped:
                return False
            self._stopped = True
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()
        return True

    def _register(self, key: int, callback: Callable[[], object]) -> bool:
        """Register ``callback`` under ``key``; False if already stopped."""
        with self._lock:
            if self._stopped:
                return False
            self._callbacks[key] = callback
            return True

    def _unregister(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)

    def __repr__(self) -> str:
        return f"<StopSource stop_requested={self._stopped}>"


@final
class StopToken:
    """The observer side: passed as ``stop_token=`` to an operation."""

    __slots__ = ("_source",)

    def __init__(self, source: StopSource) -> None:
        self._source = source

    @property
    def stop_requested(self) -> bool:
        """Whether the source requested a stop."""
        return self._source._stopped

    def __repr__(self) -> str:
        return f"<StopToken stop_requested={self.stop_requested}>"


def check_token(token: object) -> StopToken | None:
    """Validate a ``stop_token=`` argument: a StopToken or None."""
    if token is not None and not isinstance(token, StopToken):
        raise TypeError(f"stop_token must be a StopToken or None, not {type(token).__name__}")
    return token
