"""Strict HTTP/1.1 request parsing (RFC 9112) for the example server.

The request head (:func:`parse_head`), the body's framing
(:func:`body_length`) and reading a body, chunked or not, from a connection
(:class:`Connection`); anything RFC 9112 rejects raises :class:`RequestError`
carrying the status line to answer with.  What is rejected, and why a strict
reading matters, is in :mod:`corosio_py.examples.http_server`, which serves
with these.
"""

from __future__ import annotations

import re
from typing import Final

import corosio_py as cio

__all__ = (
    "MAX_ECHO",
    "MAX_HEADER",
    "Connection",
    "RequestError",
    "body_length",
    "parse_head",
)

#: Largest request head (request line and header fields), and largest
#: trailer section of a chunked body: more gets 431 / 400.
MAX_HEADER: Final = 16 * 1024
#: Largest body ``/echo`` sends back: more gets 413.
MAX_ECHO: Final = 1024 * 1024

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: method SP request-target SP HTTP-version, nothing more (RFC 9112 3).
_REQUEST_LINE = re.compile(rf"({_TOKEN}) ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
#: field-name ":" OWS field-value OWS (RFC 9112 5): no space before the
#: colon, no control characters but HTAB in the value.  The value keeps its
#: trailing OWS (stripped afterwards: much faster than a lazy match).
_FIELD_LINE = re.compile(rf"({_TOKEN}):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
#: chunk-size [ chunk-ext ] (RFC 9112 7.1.1); the size at most 16 hex digits.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:[ \t]*;[ \t]*"
    + _TOKEN.encode()
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN.encode()
    + rb'|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*'
)
#: Fields a request may carry at most once.
_SINGLETONS: Final = frozenset(("host", "content-length"))

_BAD_REQUEST: Final = "400 Bad Request"


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the response's status line."""

    def __init__(self, reason: str, status: str = _BAD_REQUEST) -> None:
        """Refuse with ``status`` (default ``400 Bad Request``) for ``reason``."""
        super().__init__(reason)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Parse a request head (without its final blank line).

    :return: method, target, version (``"HTTP/1.1"``) and the header fields,
        names lower-cased; a repeated field's values are joined with ``", "``.
    :raises RequestError: (a ``ValueError``) for anything RFC 9112 rejects.
    """
    lines = head.decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise RequestError(f"bad request line {lines[0][:100]!r}")
    method, target, major, minor = match.groups()
    if major != "1":
        raise RequestError(f"HTTP/{major}.{minor}", "505 HTTP Version Not Supported")
    headers: dict[str, str] = {}
    field_line = _FIELD_LINE.fullmatch
    for line in lines[1:]:
        field = field_line(line)
        if field is None:
            raise RequestError(f"bad header line {line[:100]!r}")
        name, value = field.groups()
        name = name.lower()
        value = value.rstrip(" \t")
        if name in headers:
            if name in _SINGLETONS:
                raise RequestError(f"repeated {name} field")
            value = f"{headers[name]}, {value}"
        headers[name] = value
    version = f"HTTP/1.{minor}"
    if minor != "0" and "host" not in headers:
        raise RequestError("HTTP/1.1 request without Host")
    return method, target, version, headers


def body_length(headers: dict[str, str]) -> int | None:
    """The request body's length, ``None`` for a chunked body (RFC 9112 6.3).

    :raises RequestError: for an ambiguous or unsupported framing.
    """
    length = headers.get("content-length")
    codings = headers.get("transfer-encoding")
    if codings is None:
        if length is None:
            return 0
        if not (length.isascii() and length.isdigit()):
            raise RequestError(f"bad Content-Length {length[:40]!r}")
        return int(length)
    if length is not None:
        raise RequestError("both Content-Length and Transfer-Encoding")
    names = [coding.strip().lower() for coding in codings.split(",")]
    if names[-1] != "chunked" or "chunked" in names[:-1] or "" in names:
        raise RequestError(f"Transfer-Encoding {codings[:60]!r} does not end in one chunked")
    if len(names) > 1:
        raise RequestError(f"Transfer-Encoding {codings[:60]!r}", "501 Not Implemented")
    return None


class Connection:
    """One connection's socket and read buffer (bytes past what was parsed)."""

    __slots__ = ("buf", "sock", "view")

    def __init__(self, sock: cio.TCPSocket | cio.TLSStream) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.view = memoryview(bytearray(65536))

    async def fill(self) -> None:
        """Append what the next read brings; ``EOFError`` if the peer closed."""
        n = await self.sock.read_some(self.view)
        if n == 0:
            raise EOFError("the client closed the connection mid-request")
        self.buf += self.view[:n]

    async def line(self, limit: int) -> bytes:
        """The next CRLF-terminated line, without the CRLF.

        :raises RequestError: when no CRLF comes within ``limit`` bytes.
        """
        buf = self.buf
        end = buf.find(b"\r\n")
        while end < 0:
            if len(buf) > limit:
                raise RequestError("line too long")
            await self.fill()
            end = buf.find(b"\r\n")
        line = bytes(buf[:end])
        del buf[: end + 2]
        return line

    async def body(self, length: int, keep: bytearray | None) -> None:
        """Consume ``length`` body bytes, appended to ``keep`` unless None.

        Bytes beyond them (a pipelined request) stay in the buffer.
        """
        buf = self.buf
        skip = min(length, len(buf))
        if keep is not None:
            keep += buf[:skip]
        del buf[:skip]
        remaining = length - skip
        view = self.view
        while remaining:
            n = await self.sock.read_some(view)
            if n == 0:
                raise EOFError("the client closed the connection mid-body")
            if n > remaining:  # the next request starts in this read
                buf += view[remaining:n]
                n = remaining
            if keep is not None:
                keep += view[:n]
            remaining -= n

    async def chunked(self, keep: bytearray | None) -> None:
        """Consume a chunked body (RFC 9112 7.1), data appended to ``keep``.

        :raises RequestError: for a malformed body, or one beyond
            :data:`MAX_ECHO` when kept.
        """
        total = 0
        while True:
            size_line = await self.line(MAX_HEADER)
            match = _CHUNK_LINE.fullmatch(size_line)
            if match is None:
                raise RequestError(f"bad chunk-size line {size_line[:60]!r}")
            size = int(match[1], 16)
            if size == 0:
                break
            total += size
            if keep is not None and total > MAX_ECHO:
                raise RequestError("chunked body too large", "413 Content Too Large")
            await self.body(size, keep)
            while len(self.buf) < 2:
                await self.fill()
            if self.buf[:2] != b"\r\n":
                raise RequestError("chunk data not followed by CRLF")
            del self.buf[:2]
        budget = MAX_HEADER  # the trailer section: checked, then dropped
        while field := await self.line(budget):
            budget -= len(field) + 2
            if _FIELD_LINE.fullmatch(field.decode("latin-1")) is None:
                raise RequestError(f"bad trailer line {field[:100]!r}")
