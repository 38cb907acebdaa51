"""Helpers servlets use to read their input: query parameters and JSON bodies.

The names, keywords, defaults, messages and errcodes are those of Synapse's
`synapse.http.servlet`, so ported servlet code runs unchanged. Every failure
is a `SynapseError`, so a bad request always gets a 400 (or 413) that says
what was wrong.

Query arguments: each `*_from_args` function takes the arguments as Synapse
has them (`request.args`: `dict[bytes, list[bytes]]`, bytes keys) or keyed by
`str` (a `dict[str, list[str]]` or Werkzeug's `MultiDict`), and the name as
`str` or `bytes`. Values are handled as bytes, as in Synapse: strings are
decoded with `encoding` (ASCII unless told otherwise), so `?q=%C3%A9` is a
400 for `parse_string(request, "q")` and "\u00e9" with `encoding="utf-8"`.

Deliberate difference: integers must be ASCII digits with an optional
leading `-`, at most 20 of them. Synapse hands the value to `int()`, which
also takes `" 12"`, `"+12"` and `"1_000"`, and spends quadratic time on
thousands of digits.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, overload

from ._internal.jsonbody import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from ._internal.jsonbody import loads_strict, parse_json_body
from .errors import Codes, SynapseError
from .request import read_body as read_body

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .request import SynapseRequest
    from .resources import RestServlet as RestServlet


def parse_json_value_from_request(request: SynapseRequest, allow_empty_body: bool = False) -> Any:
    """The request body parsed as JSON; 400 `M_NOT_JSON` when it is not JSON."""
    content = read_body(request)
    if not content and allow_empty_body:
        return None
    return parse_json_body(content)


def parse_json_object_from_request(request: SynapseRequest, allow_empty_body: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; 400 `M_BAD_JSON` for any other value."""
    content = parse_json_value_from_request(request, allow_empty_body)
    if allow_empty_body and content is None:
        return {}
    if not isinstance(content, dict):
        raise SynapseError(HTTPStatus.BAD_REQUEST, "Content must be a JSON object.", Codes.BAD_JSON)
    return content


# -- pydantic models -------------------------------------------------------------------------

Model = TypeVar("Model", bound="BaseModel")


def validate_json_object(content: Mapping[str, Any], model_type: type[Model]) -> Model:
    """`content` validated into `model_type`, a pydantic (v2) model; 400 otherwise.

    The errcode is `M_MISSING_PARAM` when the one problem is a missing field,
    `M_INVALID_PARAM` when it is one value a validator refused, else
    `M_BAD_JSON`; the message is pydantic's description, as in Synapse.
    Needs the `pydantic` extra.
    """
    from pydantic import ValidationError

    try:
        return model_type.model_validate(content)
    except ValidationError as e:
        errcode = Codes.BAD_JSON
        if e.error_count() == 1:
            kind = e.errors()[0]["type"]
            if kind == "missing":
                errcode = Codes.MISSING_PARAM
            elif kind == "value_error":
                errcode = Codes.INVALID_PARAM
        raise SynapseError(HTTPStatus.BAD_REQUEST, str(e), errcode) from None


def parse_and_validate_json_object_from_request(request: SynapseRequest, model_type: type[Model]) -> Model:
    """The request body as a JSON object, validated into the pydantic model `model_type`."""
    return validate_json_object(parse_json_object_from_request(request), model_type)


def assert_params_in_dict(body: Mapping[str, Any], required: Collection[str]) -> None:
    """400 `M_MISSING_PARAM` naming every key of `required` that `body` lacks."""
    absent = [key for key in required if key not in body]
    if absent:
        raise SynapseError(HTTPStatus.BAD_REQUEST, f"Missing params: {absent!r}", Codes.MISSING_PARAM)


# -- query parameters ------------------------------------------------------------------------

#: Query arguments as Synapse has them (bytes keys, lists of bytes) or keyed by
#: str (a dict of lists, or Werkzeug's `MultiDict`, whose values are str).
QueryArgs: TypeAlias = Mapping[bytes, Sequence[bytes]] | Mapping[str, Sequence[str]]


def query_values(args: QueryArgs, name: str | bytes) -> list[bytes] | None:
    """Every value of `name` in `args` as bytes; None when it is absent."""
    key_bytes = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    mapping: Mapping[Any, Any] = args
    raw = mapping.get(key_bytes)
    if raw is None:
        key_text = name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")
        if key_text not in mapping:
            return None
        getlist = getattr(mapping, "getlist", None)  # a MultiDict's [] is only the first value
        raw = getlist(key_text) if getlist is not None else mapping[key_text]
    elif type(raw) is list and raw and type(raw[0]) is bytes:
        return raw  # Synapse's shape, as request.args has it: nothing to convert
    if isinstance(raw, (bytes, str)):
        raw = [raw]
    values = [value if isinstance(value, bytes) else str(value).encode("utf-8") for value in raw]
    return values or None


def _label(name: str | bytes) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def _missing(message: str) -> SynapseError:
    return SynapseError(HTTPStatus.BAD_REQUEST, message, Codes.MISSING_PARAM)


def _invalid(message: str) -> SynapseError:
    return SynapseError(HTTPStatus.BAD_REQUEST, message, Codes.INVALID_PARAM)


@overload
def parse_integer_from_args(
    args: QueryArgs, name: str | bytes, default: int, required: Literal[False] = False, negative: bool = False
) -> int: ...
@overload
def parse_integer_from_args(
    args: QueryArgs, name: str | bytes, *, required: Literal[True], negative: bool = False
) -> int: ...
@overload
def parse_integer_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: int | None = None,
    required: bool = False,
    negative: bool = False,
) -> int | None: ...
def parse_integer_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: int | None = None,
    required: bool = False,
    negative: bool = False,
) -> int | None:
    """An integer query argument; negative values only with `negative=True`."""
    values = query_values(args, name)
    label = _label(name)
    if values is None:
        if required:
            raise _missing(f"Missing required integer query parameter {label}")
        return default
    text = values[0]
    digits = text[1:] if text.startswith(b"-") else text
    if not digits.isdigit() or len(digits) > 20:  # bytes.isdigit(): ASCII digits only
        raise _invalid(f"Query parameter {label} must be an integer")
    integer = int(text)
    if integer < 0 and not negative:
        raise _invalid(f"Query parameter {label} must be a positive integer.")
    return integer


@overload
def parse_integer(
    request: SynapseRequest,
    name: str | bytes,
    default: int,
    required: Literal[False] = False,
    negative: bool = False,
) -> int: ...
@overload
def parse_integer(
    request: SynapseRequest, name: str | bytes, *, required: Literal[True], negative: bool = False
) -> int: ...
@overload
def parse_integer(
    request: SynapseRequest,
    name: str | bytes,
    default: int | None = None,
    required: bool = False,
    negative: bool = False,
) -> int | None: ...
def parse_integer(
    request: SynapseRequest,
    name: str | bytes,
    default: int | None = None,
    required: bool = False,
    negative: bool = False,
) -> int | None:
    """An integer query parameter of `request` (see `parse_integer_from_args`)."""
    return parse_integer_from_args(request.args, name, default, required, negative)


@overload
def parse_boolean_from_args(args: QueryArgs, name: str | bytes, default: bool) -> bool: ...
@overload
def parse_boolean_from_args(args: QueryArgs, name: str | bytes, *, required: Literal[True]) -> bool: ...
@overload
def parse_boolean_from_args(
    args: QueryArgs, name: str | bytes, default: bool | None = None, required: bool = False
) -> bool | None: ...
def parse_boolean_from_args(
    args: QueryArgs, name: str | bytes, default: bool | None = None, required: bool = False
) -> bool | None:
    """A `true`/`false` query argument (exactly those, lower case)."""
    values = query_values(args, name)
    label = _label(name)
    if values is None:
        if required:
            raise _missing(f"Missing boolean query parameter {label!r}")
        return default
    if values[0] == b"true":
        return True
    if values[0] == b"false":
        return False
    raise _invalid(f"Boolean query parameter {label!r} must be one of ['true', 'false']")


@overload
def parse_boolean(request: SynapseRequest, name: str | bytes, default: bool) -> bool: ...
@overload
def parse_boolean(request: SynapseRequest, name: str | bytes, *, required: Literal[True]) -> bool: ...
@overload
def parse_boolean(
    request: SynapseRequest, name: str | bytes, default: bool | None = None, required: bool = False
) -> bool | None: ...
def parse_boolean(
    request: SynapseRequest, name: str | bytes, default: bool | None = None, required: bool = False
) -> bool | None:
    """A `true`/`false` query parameter of `request`."""
    return parse_boolean_from_args(request.args, name, default, required)


@overload
def parse_bytes_from_args(
    args: QueryArgs, name: str | bytes, default: bytes | None = None
) -> bytes | None: ...
@overload
def parse_bytes_from_args(
    args: QueryArgs, name: str | bytes, default: None = None, *, required: Literal[True]
) -> bytes: ...
@overload
def parse_bytes_from_args(
    args: QueryArgs, name: str | bytes, default: bytes | None = None, required: bool = False
) -> bytes | None: ...
def parse_bytes_from_args(
    args: QueryArgs, name: str | bytes, default: bytes | None = None, required: bool = False
) -> bytes | None:
    """A query argument's first value, undecoded."""
    values = query_values(args, name)
    if values is not None:
        return values[0]
    if required:
        raise _missing(f"Missing string query parameter {_label(name)}")
    return default


def _parse_string_value(
    value: bytes, allowed_values: Collection[str] | None, name: str | bytes, encoding: str
) -> str:
    try:
        text = value.decode(encoding)
    except ValueError:  # UnicodeDecodeError
        # Synapse's errcode here is M_UNKNOWN; kept so clients see the same error.
        raise SynapseError(
            HTTPStatus.BAD_REQUEST, f"Query parameter {_label(name)!r} must be {encoding}"
        ) from None
    if allowed_values is not None and text not in allowed_values:
        choices = ", ".join(repr(v) for v in allowed_values)
        raise _invalid(f"Query parameter {_label(name)!r} must be one of [{choices}]")
    return text


@overload
def parse_strings_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: list[str],
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> list[str]: ...
@overload
def parse_strings_from_args(
    args: QueryArgs,
    name: str | bytes,
    *,
    required: Literal[True],
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> list[str]: ...
@overload
def parse_strings_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: list[str] | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> list[str] | None: ...
def parse_strings_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: list[str] | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> list[str] | None:
    """Every value of a repeated query argument (`?dir=a&dir=b`), each decoded and checked."""
    values = query_values(args, name)
    if values is None:
        if required:
            raise _missing(f"Missing string query parameter {_label(name)!r}")
        return default
    return [_parse_string_value(value, allowed_values, name, encoding) for value in values]


@overload
def parse_string_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: str,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str: ...
@overload
def parse_string_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: str | None = None,
    *,
    required: Literal[True],
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str: ...
@overload
def parse_string_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: str | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str | None: ...
def parse_string_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: str | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str | None:
    """A query argument's first value, decoded with `encoding`, maybe one of `allowed_values`.

    `default` is returned as it is, even if it is not among `allowed_values`.
    """
    strings = parse_strings_from_args(
        args,
        name,
        [default] if default is not None else None,
        required=required,
        allowed_values=allowed_values,
        encoding=encoding,
    )
    return strings[0] if strings else None


@overload
def parse_string(
    request: SynapseRequest,
    name: str | bytes,
    default: str,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str: ...
@overload
def parse_string(
    request: SynapseRequest,
    name: str | bytes,
    default: str | None = None,
    *,
    required: Literal[True],
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str: ...
@overload
def parse_string(
    request: SynapseRequest,
    name: str | bytes,
    default: str | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str | None: ...
def parse_string(
    request: SynapseRequest,
    name: str | bytes,
    default: str | None = None,
    required: bool = False,
    allowed_values: Collection[str] | None = None,
    encoding: str = "ascii",
) -> str | None:
    """A string query parameter of `request` (see `parse_string_from_args`)."""
    return parse_string_from_args(
        request.args, name, default, required=required, allowed_values=allowed_values, encoding=encoding
    )


def parse_json_from_args(
    args: QueryArgs,
    name: str | bytes,
    default: Any = None,
    required: bool = False,
    encoding: str = "ascii",
) -> Any:
    """A query argument holding JSON (such as `?filter={...}`), parsed; 400 `M_NOT_JSON` if it is not.

    As in Synapse, the value is percent-decoded once more before parsing, and
    any JSON value is accepted.
    """
    if query_values(args, name) is None:
        if required:
            raise _missing(f"Missing required JSON query parameter {_label(name)}")
        return default
    text = parse_string_from_args(args, name, required=True, encoding=encoding)
    try:
        return loads_strict(urllib.parse.unquote(text))
    except (ValueError, RecursionError):
        raise SynapseError(
            HTTPStatus.BAD_REQUEST,
            f"Query parameter {_label(name)} must be a valid JSON object",
            Codes.NOT_JSON,
        ) from None


def parse_json(
    request: SynapseRequest,
    name: str | bytes,
    default: Any = None,
    required: bool = False,
    encoding: str = "ascii",
) -> Any:
    """A JSON query parameter of `request` (see `parse_json_from_args`)."""
    return parse_json_from_args(request.args, name, default, required=required, encoding=encoding)


EnumT = TypeVar("EnumT", bound=enum.Enum)


@overload
def parse_enum(
    request: SynapseRequest,
    name: str | bytes,
    E: type[EnumT],  # noqa: N803 (Synapse's keyword)
    default: EnumT,
) -> EnumT: ...
@overload
def parse_enum(
    request: SynapseRequest,
    name: str | bytes,
    E: type[EnumT],  # noqa: N803
    *,
    required: Literal[True],
) -> EnumT: ...
@overload
def parse_enum(
    request: SynapseRequest,
    name: str | bytes,
    E: type[EnumT],  # noqa: N803
    default: EnumT | None = None,
    required: bool = False,
) -> EnumT | None: ...
def parse_enum(
    request: SynapseRequest,
    name: str | bytes,
    E: type[EnumT],  # noqa: N803
    default: EnumT | None = None,
    required: bool = False,
) -> EnumT | None:
    """A query parameter that must be the value of one member of `E` (an enum of str values)."""
    choices = [member.value for member in E]
    if not all(isinstance(choice, str) for choice in choices):
        raise TypeError("parse_enum only works with enums whose values are all str")
    text = parse_string(
        request,
        name,
        default.value if default is not None else None,
        required=required,
        allowed_values=choices,
    )
    return None if text is None else E(text)


def __getattr__(name: str) -> Any:
    # `from synwsgi.servlet import RestServlet`, Synapse's spelling; imported on
    # first use because resources may import this module.
    if name == "RestServlet":
        from .resources import RestServlet

        return RestServlet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
