"""Helpers servlets use to read their input: query parameters and JSON bodies.

Every failure is a `SynapseError` with the errcode Synapse uses, so a bad
request always gets a 400 (or 413) that says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .errors import Codes, SynapseError
from .request import read_body as read_body

if TYPE_CHECKING:
    from .request import SynapseRequest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


#: Deeper request bodies are refused: whatever a handler echoes back must stay
#: within what the encoders can nest (orjson stops at 255 levels).
MAX_JSON_DEPTH = 128

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

# Strict JSON: no NaN/Infinity, no numbers that overflow to infinity; integers
# stay exact (orjson would turn big ones into floats).
_json_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_surrogate_probe = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def parse_json_value_from_request(request: SynapseRequest, allow_empty_body: bool = False) -> Any:
    """The request body parsed as JSON; 400 `M_NOT_JSON` when it is not JSON."""
    content = read_body(request)
    if not content and allow_empty_body:
        return None
    try:
        value = _json_decoder.decode(content.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(content):
            # "\ud800" alone decodes to a str no UTF-8 (or canonical JSON) can hold.
            _surrogate_probe.encode(value).encode("utf-8")
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError/EncodeError
        raise SynapseError(HTTPStatus.BAD_REQUEST, "Content not JSON.", Codes.NOT_JSON) from None
    # Nesting is bounded by the number of brackets: only bodies with many are walked.
    if content.count(b"[") + content.count(b"{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise SynapseError(
            HTTPStatus.BAD_REQUEST, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", Codes.BAD_JSON
        )
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def parse_json_object_from_request(request: SynapseRequest, allow_empty_body: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; 400 `M_BAD_JSON` for any other value."""
    content = parse_json_value_from_request(request, allow_empty_body)
    if allow_empty_body and content is None:
        return {}
    if not isinstance(content, dict):
        raise SynapseError(HTTPStatus.BAD_REQUEST, "Content must be a JSON object.", Codes.BAD_JSON)
    return content


def _query_value(request: SynapseRequest, name: str, required: bool, kind: str) -> str | None:
    value = request.query_args.get(name)
    if value is None and required:
        raise SynapseError(
            HTTPStatus.BAD_REQUEST, f"Missing {kind}query parameter {name!r}", Codes.MISSING_PARAM
        )
    return value


def _invalid(message: str) -> SynapseError:
    return SynapseError(HTTPStatus.BAD_REQUEST, message, Codes.INVALID_PARAM)


def parse_integer(
    request: SynapseRequest,
    name: str,
    default: int | None = None,
    required: bool = False,
    negative: bool = False,
) -> int | None:
    """An integer query parameter; negative values only when `negative`."""
    value = _query_value(request, name, required, "integer ")
    if value is None:
        return default
    # int() would also take " 12", "1_000" and non-ASCII digits.
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
        raise _invalid(f"Query parameter {name!r} must be an integer")
    number = int(value)
    if number < 0 and not negative:
        raise _invalid(f"Query parameter {name!r} must be a positive integer")
    return number


def parse_boolean(
    request: SynapseRequest, name: str, default: bool | None = None, required: bool = False
) -> bool | None:
    """A `true`/`false` query parameter."""
    value = _query_value(request, name, required, "boolean ")
    if value is None:
        return default
    if value not in ("true", "false"):
        raise _invalid(f"Boolean query parameter {name!r} must be one of ['true', 'false']")
    return value == "true"


def parse_string(
    request: SynapseRequest,
    name: str,
    default: str | None = None,
    required: bool = False,
    allowed_values: Iterable[str] | None = None,
) -> str | None:
    """A string query parameter, optionally one of `allowed_values`."""
    value = _query_value(request, name, required, "")
    if value is None:
        return default
    if allowed_values is not None:
        allowed = list(allowed_values)
        if value not in allowed:
            raise _invalid(f"Query parameter {name!r} must be one of [{', '.join(map(repr, allowed))}]")
    return value
