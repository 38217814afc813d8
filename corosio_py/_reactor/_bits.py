"""Readiness bits, and the one translation between them and an OS mask.

Every backend reports readiness to its targets in the same four bits (the
epoll values, as upstream uses).  Each OS names them differently: epoll and
poll in an event mask, kqueue in a filter plus flags, select in which of its
three lists an fd came back.  A :class:`BitTable` is the one way a backend
turns its native mask into these bits (and poll its request back into a
native mask), so no backend carries its own translation loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, final

#: Readiness bits handed to a target (upstream uses the epoll values).
READ: Final = 0x1
WRITE: Final = 0x4
ERROR: Final = 0x8
#: The peer hung up (or half-closed): readable without any further edge.
HANGUP: Final = 0x10


@final
class BitTable(dict[int, int]):
    """A memoised mask translation: ``table[mask]`` is the OR of the right
    side of every row ``(bit, bits)`` whose ``bit`` is set in ``mask``.

    The first lookup of a mask computes it (``__missing__``) and stores it,
    so every later one is a single dict probe: the harvest loop of a pass
    makes no Python-level call per event.  The masks a backend looks up are
    the OS's own bit sets, so the table stays small (at most one entry per
    combination of the bits the OS reports).

    Thread safety: a miss may be computed by two threads at once; both
    store the same value, and a dict store is atomic on every build.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: Iterable[tuple[int, int]]) -> None:
        """Build an empty table over ``rows`` of ``(bit, translated bits)``."""
        super().__init__()
        self._rows = tuple(rows)

    def __missing__(self, mask: int) -> int:
        """Compute, store and return the translation of ``mask``."""
        out = 0
        for bit, mapped in self._rows:
            if mask & bit:
                out |= mapped
        self[mask] = out
        return out


#: Our own bits, unchanged: for backends that build them directly (select,
#: and kqueue once it has merged an fd's two filters).
SAME: Final = BitTable((bit, bit) for bit in (READ, WRITE, ERROR, HANGUP))
