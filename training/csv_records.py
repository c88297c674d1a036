"""Split a CSV file's bytes into records, each with the physical line it starts on.

The csv module, reading a text file, stops for good at the first record it cannot take (bytes that
are not UTF-8, a field over its size limit) and numbers a record by its last line. Finding the
record boundaries first, on bytes, lets every record be decoded, size-checked and parsed on its own,
so one broken record is one bad row and the rows after it are read as usual. The boundaries follow
the csv module's default (excel) dialect: a field that starts with a double quote is quoted, ``""``
inside it is a quote character, and a line break inside quotes belongs to the field. The bytes that
matter (``"``, ``,``, ``\\n``) never occur inside a multi-byte UTF-8 character, so scanning bytes is
safe whatever the encoding errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_BYTES = 1 << 20  # a physical line is read in pieces of at most this size
_QUOTE, _COMMA, _NEWLINE = ord('"'), ord(","), ord("\n")
_START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED = range(4)


@dataclass(frozen=True)
class Record:
    """One CSV record. ``data`` is None when the record is over the size limit (its bytes are not kept)."""

    line: int
    size: int
    data: bytes | None
    unclosed_quote: bool = False  # the file ended inside a quoted field


class QuoteScanner:
    """Tracks whether the bytes fed so far end inside a quoted field; pieces may split anywhere."""

    def __init__(self) -> None:
        self.state = _START_FIELD

    @property
    def at_record_start(self) -> bool:
        return self.state == _START_FIELD

    @property
    def in_quotes(self) -> bool:
        return self.state in (_IN_QUOTED, _QUOTE_IN_QUOTED)

    def feed(self, chunk: bytes) -> None:
        index, length = 0, len(chunk)
        while index < length:
            state = self.state
            if state == _IN_QUOTED:
                found = chunk.find(b'"', index)
                if found < 0:
                    return
                self.state, index = _QUOTE_IN_QUOTED, found + 1
            elif state == _QUOTE_IN_QUOTED:
                if chunk[index] == _QUOTE:  # "" is a quote character inside the field
                    self.state, index = _IN_QUOTED, index + 1
                else:  # the field's closing quote; this byte is read unquoted
                    self.state = _IN_FIELD
            else:  # outside quotes: a quote opens a field only as its first character
                found = chunk.find(b'"', index)
                if found < 0:
                    if index < length:
                        self.state = _START_FIELD if chunk[-1] in (_COMMA, _NEWLINE) else _IN_FIELD
                    return
                opens = state == _START_FIELD if found == index else chunk[found - 1] in (_COMMA, _NEWLINE)
                self.state, index = (_IN_QUOTED if opens else _IN_FIELD), found + 1


def read_records(handle: BinaryIO, max_bytes: int) -> Iterator[Record]:
    """The records of a binary CSV stream (after any byte-order mark), never holding more than
    ``max_bytes`` of one record in memory."""
    scanner = QuoteScanner()
    line = start = 1
    parts: list[bytes] | None = []
    size = 0
    while True:
        chunk = handle.readline(CHUNK_BYTES)
        if not chunk:
            break
        scanner.feed(chunk)
        size += len(chunk)
        if parts is not None:
            parts.append(chunk)
            if size > max_bytes:
                parts = None
        if chunk.endswith(b"\n"):
            line += 1
            if scanner.at_record_start:
                yield Record(start, size, b"".join(parts) if parts is not None else None)
                start, parts, size = line, [], 0
    if size:
        yield Record(start, size, b"".join(parts) if parts is not None else None, unclosed_quote=scanner.in_quotes)
