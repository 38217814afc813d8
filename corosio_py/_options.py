"""Socket options as properties, written once for every socket class.

``BoolOption`` and ``SizeOption`` read and write the option on the open fd
(``OSError(EBADF)`` when closed).  ``PresetOption`` is for options that must
be in place before ``bind`` (``SO_REUSEADDR``, ``SO_REUSEPORT``,
``SO_BROADCAST``): set on a closed object it is remembered and applied to
every socket the object opens later; set on an open one it is applied now
and remembered too.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._handle import DescriptorHandle

__all__ = (
    "REUSE_PORT",
    "SO_REUSEPORT",
    "BoolOption",
    "PresetOption",
    "SizeOption",
    "apply_presets",
    "check_size",
)

#: SO_REUSEPORT where the platform has it (Linux, macOS, the BSDs).
SO_REUSEPORT: Final[int | None] = getattr(socket, "SO_REUSEPORT", None)


def _unsupported(name: str) -> OSError:
    return OSError(errno.ENOPROTOOPT, f"{name} is not supported on this platform")


def check_size(value: object) -> int:
    """A buffer size: ``TypeError`` for a non-int, ``ValueError`` for <= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a buffer size must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError("a buffer size must be > 0")
    return value


class BoolOption:
    """A boolean socket option read and written on the open fd."""

    # No __slots__: the instance carries its own ``__doc__`` (for help()).

    def __init__(self, level: int, option: int, doc: str) -> None:
        self.level = level
        self.option = option
        self.__doc__ = doc

    def __get__(self, obj: DescriptorHandle | None, owner: type) -> Any:
        if obj is None:
            return self
        return bool(obj._getopt(self.level, self.option))

    def __set__(self, obj: DescriptorHandle, value: bool) -> None:
        obj._setopt(self.level, self.option, int(bool(value)))


class SizeOption(BoolOption):
    """A byte-count socket option (``SO_RCVBUF``, ``SO_SNDBUF``)."""

    def __get__(self, obj: DescriptorHandle | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj._getopt(self.level, self.option)

    def __set__(self, obj: DescriptorHandle, value: int) -> None:
        obj._setopt(self.level, self.option, check_size(value))


class PresetOption:
    """A boolean option that must be set before ``bind`` (see the module).

    ``option`` is ``None`` where the platform lacks it: reading gives False,
    setting True raises ``OSError(ENOPROTOOPT)``.  Shaped as
    :class:`BoolOption` but not one: its option may be absent, and every
    access reads or writes the remembered presets first.
    """

    # No __slots__: the instance carries its own ``__doc__`` (for help()).

    def __init__(
        self, level: int, option: int | None, name: str, doc: str, default: bool = False
    ) -> None:
        self.level = level
        self.option = option
        self.name = name
        self.default = default
        self.__doc__ = doc

    def __get__(self, obj: DescriptorHandle | None, owner: type) -> Any:
        if obj is None:
            return self
        if self.option is None:
            return False
        if obj.is_open:
            return bool(obj._getopt(self.level, self.option))
        presets = obj._presets
        return presets.get(self.option, self.default) if presets else self.default

    def __set__(self, obj: DescriptorHandle, value: bool) -> None:
        on = bool(value)
        if self.option is None:
            if on:
                raise _unsupported(self.name)
            return
        if obj._presets is None:
            obj._presets = {}
        obj._presets[self.option] = on  # owner-only field, like open()
        if obj.is_open:
            obj._setopt(self.level, self.option, int(on))


def apply_presets(sock: socket.socket, presets: dict[int, bool] | None) -> None:
    """Apply an object's remembered ``SOL_SOCKET`` options to a new socket."""
    if presets:
        for option, on in presets.items():
            sock.setsockopt(socket.SOL_SOCKET, option, int(on))


#: ``reuse_port`` of acceptors and UDP sockets (one descriptor serves every
#: class: it keeps its state on the object).
REUSE_PORT: Final = PresetOption(
    socket.SOL_SOCKET,
    SO_REUSEPORT,
    "SO_REUSEPORT",
    "SO_REUSEPORT: several sockets (in one process or several) may bind the "
    "same endpoint, and the kernel spreads connections or datagrams among "
    "them.  Set before ``bind``; remembered for later opens.  Setting it where "
    "the platform lacks it raises ``OSError(ENOPROTOOPT)``.",
)
