"""`QueryArgs`: the query string as Werkzeug's `MultiDict`, answering Twisted's bytes keys too.

Werkzeug users (and `request.values`) expect `request.args` to be a
`MultiDict[str, str]`; Synapse's servlets, written for Twisted, index it with
bytes and get every value as raw bytes (`request.args[b"since"] == [b"s72"]`).
Both are the same query string: text keys answer Werkzeug's way, bytes keys
Twisted's way, so neither kind of code has to change.

The text view decodes UTF-8 with replacement, as Werkzeug does; the bytes view
keeps each percent-decoded byte, so the `parse_*` helpers can refuse what is
not valid in the encoding they are asked for (as Synapse does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, overload
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict


def _raw_pairs(query_string: bytes) -> list[tuple[bytes, bytes]]:
    # latin-1 maps each byte to one character and back: percent-escapes and
    # raw bytes alike come out as the bytes they stand for.
    text = query_string.decode("latin-1")
    return [
        (key.encode("latin-1"), value.encode("latin-1"))
        for key, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    ]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class QueryArgs(MultiDict[str, str]):
    """`request.args`: a `MultiDict[str, str]` that also answers bytes keys with `list[bytes]`."""

    def __init__(self, query_string: bytes = b"") -> None:
        raw: dict[bytes, list[bytes]] = {}
        for key, value in _raw_pairs(query_string):
            raw.setdefault(key, []).append(value)
        #: Twisted's view: raw bytes by raw bytes key
        self.raw: dict[bytes, list[bytes]] = raw
        super().__init__([(_text(key), _text(value)) for key, values in raw.items() for value in values])

    @overload
    def __getitem__(self, key: bytes) -> list[bytes]: ...
    @overload
    def __getitem__(self, key: str) -> str: ...
    def __getitem__(self, key: Any) -> Any:
        """The first value of a text key (Werkzeug), every raw value of a bytes key (Twisted)."""
        if isinstance(key, bytes):
            return self.raw[key]
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        """Whether the text or bytes key is in the query."""
        if isinstance(key, bytes):
            return key in self.raw
        return super().__contains__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]
        """Werkzeug's `get` for a text key; Twisted's `args.get` (a list of bytes) for a bytes key."""
        if isinstance(key, bytes):
            return self.raw.get(key, default)
        return super().get(key, default, type) if type is not None else super().get(key, default)

    def getlist(self, key: Any, type: Any = None) -> Any:
        """Every value of a text key (Werkzeug), or of a bytes key as raw bytes."""
        if isinstance(key, bytes):
            return list(self.raw.get(key, ()))
        return super().getlist(key, type) if type is not None else super().getlist(key)

    def raw_items(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Twisted's `request.args.items()`: bytes keys, lists of bytes."""
        return iter(self.raw.items())
