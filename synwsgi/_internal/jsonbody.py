"""Strict JSON request bodies, as Synapse parses them.

Every way a handler reads a JSON body (`parse_json_object_from_request`,
Werkzeug's `request.json` / `get_json()`) goes through `parse_json_body`, so
all of them refuse the same things: not UTF-8, not JSON, `NaN`/`Infinity`,
numbers that overflow to infinity, lone surrogates, and nesting deeper than
the encoders can echo back.
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from typing import Any

from ..errors import Codes, SynapseError


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


def loads_strict(text: str) -> Any:
    """`json.loads` refusing NaN/Infinity and overflowing numbers (ValueError)."""
    return _json_decoder.decode(text)


def parse_json_body(content: bytes) -> Any:
    """`content` parsed as strict JSON; 400 `M_NOT_JSON` when it is not JSON,
    `M_BAD_JSON` when it nests deeper than `MAX_JSON_DEPTH`."""
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
