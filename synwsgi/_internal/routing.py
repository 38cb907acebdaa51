"""`Router`: servlet patterns matched on the raw, still percent-encoded path.

Synapse matches its regexes against the path as sent and unquotes each
parameter afterwards, so `%2F` stays inside a room alias. The Werkzeug `Map`
holds the rules (parsing, converters, validation); the router compiles each
rule's converters into one anchored regex on the raw path and indexes routes
by their literal prefix, so that a request only tries the few routes that
could match. Matching order is registration order: the first pattern
registered wins, as in Synapse.

Patterns are Werkzeug rule strings (`/rooms/<room_id>/state`) or compiled
`re.Pattern`s with named groups (Synapse's style); both match the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.routing.converters import PathConverter, UnicodeConverter

from ..errors import InvalidPathParameter, MethodNotAllowedError, UnrecognizedRequestError
from .paths import unquote_strict


class RawUnicodeConverter(UnicodeConverter):
    """One path segment, unquoted after matching."""

    part_isolating = True

    def to_python(self, value: str) -> str:
        return unquote_strict(value)


class RawPathConverter(PathConverter):
    """The rest of the path, slashes included, unquoted after matching."""

    part_isolating = False

    def to_python(self, value: str) -> str:
        return unquote_strict(value)


def new_map() -> Map:
    """A `Map` for raw paths: no slash merging or redirects, strict converters."""
    return Map(
        converters={
            "default": RawUnicodeConverter,
            "string": RawUnicodeConverter,
            "path": RawPathConverter,
        },
        strict_slashes=False,
        merge_slashes=False,
        redirect_defaults=False,
    )


@dataclass(slots=True)
class Route:
    """One registered (method, pattern) and what it leads to."""

    index: int
    method: str
    pattern: str
    regex: re.Pattern[str]
    endpoint: Any
    # name -> converter; None means "unquote strictly" (the default converter).
    converters: dict[str, Callable[[str], Any] | None]
    literal_prefix: str
    rule: Rule | None = None
    # True when every parameter only needs unquoting (the common case, and fast).
    plain: bool = field(init=False)

    def __post_init__(self) -> None:
        self.plain = not any(self.converters.values())

    def params(self, match: re.Match[str]) -> dict[str, Any]:
        if self.plain:
            return {name: unquote_strict(v, name) if v else v for name, v in match.groupdict().items()}
        params: dict[str, Any] = {}
        for name, value in match.groupdict().items():
            if value is None:
                params[name] = None
                continue
            convert = self.converters.get(name)
            if convert is None:
                params[name] = unquote_strict(value, name) if value else value
            else:
                try:
                    params[name] = convert(value)
                except InvalidPathParameter:
                    raise InvalidPathParameter(name) from None
        return params


@dataclass(slots=True)
class _MethodTable:
    """The routes of one method: exact static paths, and regexes by literal prefix."""

    static: dict[str, Route] = field(default_factory=dict)
    by_prefix: dict[str, list[Route]] = field(default_factory=dict)
    shortest_prefix: int = 0
    longest_prefix: int = 0

    def add(self, route: Route, is_static: bool) -> None:
        if is_static:
            self.static.setdefault(route.literal_prefix, route)
        else:
            bucket = route.literal_prefix[: route.literal_prefix.rfind("/") + 1]
            self.by_prefix.setdefault(bucket, []).append(route)
            lengths = [len(key) for key in self.by_prefix]
            self.shortest_prefix, self.longest_prefix = min(lengths), max(lengths)

    def match(self, path: str) -> tuple[Route, re.Match[str] | None] | None:
        best = self.static.get(path)
        best_match: re.Match[str] | None = None
        by_prefix = self.by_prefix
        longest = self.longest_prefix
        # Bucket keys are "" or end in "/": try the path's prefixes that do,
        # from the shortest key's length on.
        if self.shortest_prefix:
            end = path.find("/", self.shortest_prefix - 1) + 1
            scan = end > 0  # else the path is shorter than every bucket key
        else:
            end, scan = 0, True
        while scan and end <= longest:
            bucket = by_prefix.get(path[:end])
            if bucket is not None:
                for route in bucket:
                    if best is not None and route.index > best.index:
                        break
                    m = route.regex.fullmatch(path)
                    if m is not None:
                        best, best_match = route, m
                        break
            end = path.find("/", end) + 1
            scan = end > 0
        return None if best is None else (best, best_match)


class Router:
    """Ordered routes over a Werkzeug `Map`, matched on raw paths."""

    def __init__(self) -> None:
        self.map = new_map()
        self._routes: list[Route] = []
        self._tables: dict[str, _MethodTable] = {}
        #: every route whatever its method: one look tells an unknown path (404)
        #: from a known one with another method (405), without trying each method
        self._any_method = _MethodTable()

    def add(self, method: str, pattern: str | re.Pattern[str], endpoint: Any) -> Route:
        """Register `pattern` for `method`; earlier registrations win."""
        method = method.upper()
        index = len(self._routes)
        if isinstance(pattern, re.Pattern):
            route = Route(
                index, method, pattern.pattern, pattern, endpoint, {}, _regex_literal_prefix(pattern)
            )
            is_static = False
        else:
            rule = Rule(pattern, endpoint=index, methods=[method])
            self.map.add(rule)
            route = _route_from_rule(index, method, rule, endpoint)
            is_static = not rule.arguments
        self._routes.append(route)
        self._tables.setdefault(method, _MethodTable()).add(route, is_static)
        self._any_method.add(route, is_static)
        return route

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, Any]]:
        """The first route registered for `method` whose pattern matches.

        Raises `UnrecognizedRequestError`: 405 with `Allow` when the path is
        known for other methods, 404 otherwise. HEAD falls back to GET.
        """
        table = self._tables.get(method)
        found = table.match(raw_path) if table is not None else None
        if found is None and method == "HEAD":
            table = self._tables.get("GET")
            found = table.match(raw_path) if table is not None else None
        if found is not None:
            route, m = found
            return route, (route.params(m) if m is not None else {})
        if self._any_method.match(raw_path) is None:
            raise UnrecognizedRequestError()
        raise MethodNotAllowedError(self.allowed_methods(raw_path))

    def allowed_methods(self, raw_path: str) -> list[str]:
        """The methods some route answers on `raw_path` (HEAD implied by GET)."""
        methods = {m for m, table in self._tables.items() if table.match(raw_path) is not None}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


def rule_parts(rule: Rule) -> list[tuple[str | None, Any]]:
    """The pieces of a bound `rule`'s path: `(None, literal text)` or `(name, converter)`.

    The one place that reads Werkzeug's private rule state (`_trace`, how
    Werkzeug itself builds URLs: the host part ends at the "|" marker, and
    `_converters`). tests/test_werkzeug_adapter.py fails loudly if an upgrade
    changes either.
    """
    trace = rule._trace
    parts: list[tuple[str | None, Any]] = []
    for is_dynamic, data in trace[trace.index((False, "|")) + 1 :]:
        parts.append((data, rule._converters[data]) if is_dynamic else (None, data))
    return parts


def _route_from_rule(index: int, method: str, rule: Rule, endpoint: Any) -> Route:
    regex_parts: list[str] = []
    literal: list[str] = []
    converters: dict[str, Callable[[str], Any] | None] = {}
    for name, part in rule_parts(rule):
        if name is not None:
            data, converter = name, part
            regex_parts.append(f"(?P<{data}>{converter.regex})")
            converters[data] = None if type(converter) is RawUnicodeConverter else converter.to_python
        else:
            regex_parts.append(re.escape(part))
            if len(regex_parts) == len(literal) + 1:
                literal.append(part)
    return Route(
        index,
        method,
        rule.rule,
        re.compile("".join(regex_parts)),
        endpoint,
        converters,
        "".join(literal),
        rule,
    )


_REGEX_META = frozenset(".^$*+?{}[]|()")


def _has_top_level_alternation(source: str) -> bool:
    """Whether `source` has a `|` outside every group and character class."""
    depth = 0
    in_class = False
    escaped = False
    for char in source:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


def _regex_literal_prefix(pattern: re.Pattern[str]) -> str:
    """The literal text every match of `pattern` starts with (maybe "").

    Conservative: it stops at the first metacharacter, escape class or
    quantified character, which is all the index needs.
    """
    source = pattern.pattern
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or _has_top_level_alternation(source):
        return ""
    i = 1 if source.startswith("^") else 0
    chars: list[str] = []
    while i < len(source):
        char = source[i]
        if char == "\\":
            char = source[i + 1 : i + 2]
            if not char or char.isalnum():  # \d, \w, \A, ...: not a literal
                break
            step = 2
        elif char in _REGEX_META:
            break
        else:
            step = 1
        if source[i + step : i + step + 1] in ("*", "+", "?", "{"):
            break
        chars.append(char)
        i += step
    return "".join(chars)
