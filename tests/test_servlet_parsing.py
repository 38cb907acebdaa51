"""Issue 10, section 1: `synwsgi.servlet` as Synapse's `synapse.http.servlet`.

Query parameters go through a real `JsonResource` and the test `Client`; the
`*_from_args` variants are also fed the shapes Synapse code passes them
(bytes-keyed dicts) and str-keyed mappings, with the name as str or bytes.
"""

from __future__ import annotations

import enum
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from _helpers import assert_json_error, assert_json_response, json_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, field_validator
from werkzeug.datastructures import MultiDict
from werkzeug.test import Client

import synwsgi
from synwsgi import SynapseError, SynapseRequest
from synwsgi.servlet import (
    assert_params_in_dict,
    parse_and_validate_json_object_from_request,
    parse_boolean,
    parse_boolean_from_args,
    parse_bytes_from_args,
    parse_enum,
    parse_integer,
    parse_integer_from_args,
    parse_json,
    parse_json_from_args,
    parse_json_object_from_request,
    parse_json_value_from_request,
    parse_string,
    parse_string_from_args,
    parse_strings_from_args,
    validate_json_object,
)


def client_for(handler: Callable[[SynapseRequest], Any], method: str = "GET") -> Client:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"value": handler(request)}

    return json_client((method, ["/p"], callback, "Parse"))


def value_of(client: Client, query: str, method: str = "GET", data: bytes | None = None) -> Any:
    response = client.open(f"/p?{query}", method=method, data=data)
    return assert_json_response(response, 200)["value"]


# -- the argument shapes ---------------------------------------------------------------------

ARG_SHAPES: list[Any] = [
    {b"limit": [b"5", b"6"], b"dir": [b"b"]},  # Synapse's request.args
    {"limit": ["5", "6"], "dir": ["b"]},  # str keys, lists of str
    MultiDict([("limit", "5"), ("limit", "6"), ("dir", "b")]),  # Werkzeug
]


@pytest.mark.parametrize("args", ARG_SHAPES)
@pytest.mark.parametrize("name", ["limit", b"limit"])
def test_from_args_accept_every_shape_and_name_type(args: Any, name: str | bytes) -> None:
    assert parse_integer_from_args(args, name) == 5
    assert parse_string_from_args(args, name) == "5"
    assert parse_strings_from_args(args, name) == ["5", "6"]
    assert parse_bytes_from_args(args, name) == b"5"
    assert parse_integer_from_args(args, "absent", default=3) == 3


@pytest.mark.parametrize("name", ["limit", b"limit"])
def test_request_args_work_with_str_and_bytes_names(name: str | bytes) -> None:
    client = client_for(lambda request: parse_integer_from_args(request.args, name, required=True))
    assert value_of(client, "limit=7") == 7


def test_parse_strings_from_request_args_keeps_every_value() -> None:
    client = client_for(lambda request: parse_strings_from_args(request.args, "dir"))
    assert value_of(client, "dir=f&dir=b") == ["f", "b"]
    assert value_of(client, "") is None


# -- parse_integer ---------------------------------------------------------------------------


def test_parse_integer_default_and_value() -> None:
    client = client_for(lambda request: parse_integer(request, "limit", default=10))
    assert value_of(client, "") == 10
    assert value_of(client, "limit=0") == 0
    assert value_of(client, "limit=25") == 25


def test_parse_integer_required_missing_is_missing_param() -> None:
    client = client_for(lambda request: parse_integer(request, "limit", required=True))
    assert_json_error(
        client.get("/p"), 400, "M_MISSING_PARAM", "Missing required integer query parameter limit"
    )


@pytest.mark.parametrize("value", ["abc", "1.5", "", "%E2%91%A0", "+5", "1_000", "%2012", "1" * 21])
def test_parse_integer_not_an_integer(value: str) -> None:
    client = client_for(lambda request: parse_integer(request, "limit"))
    assert_json_error(
        client.get(f"/p?limit={value}"), 400, "M_INVALID_PARAM", "Query parameter limit must be an integer"
    )


def test_parse_integer_negative_refused_by_default() -> None:
    client = client_for(lambda request: parse_integer(request, "limit"))
    assert_json_error(
        client.get("/p?limit=-1"), 400, "M_INVALID_PARAM", "Query parameter limit must be a positive integer."
    )


def test_parse_integer_negative_allowed() -> None:
    client = client_for(lambda request: parse_integer(request, "limit", negative=True))
    assert value_of(client, "limit=-12") == -12


# -- parse_boolean ---------------------------------------------------------------------------


def test_parse_boolean_values_and_default() -> None:
    client = client_for(lambda request: parse_boolean(request, "flag", default=True))
    assert value_of(client, "") is True
    assert value_of(client, "flag=true") is True
    assert value_of(client, "flag=false") is False


@pytest.mark.parametrize("value", ["True", "1", "yes", ""])
def test_parse_boolean_invalid(value: str) -> None:
    client = client_for(lambda request: parse_boolean(request, "flag"))
    assert_json_error(
        client.get(f"/p?flag={value}"),
        400,
        "M_INVALID_PARAM",
        "Boolean query parameter 'flag' must be one of ['true', 'false']",
    )


def test_parse_boolean_required_missing() -> None:
    client = client_for(lambda request: parse_boolean(request, "flag", required=True))
    assert_json_error(client.get("/p"), 400, "M_MISSING_PARAM", "Missing boolean query parameter 'flag'")


def test_parse_boolean_from_args_bytes() -> None:
    assert parse_boolean_from_args({b"flag": [b"false"]}, "flag") is False


# -- parse_string and encodings --------------------------------------------------------------


def test_parse_string_is_ascii_by_default() -> None:
    client = client_for(lambda request: parse_string(request, "q"))
    assert value_of(client, "q=abc%2F") == "abc/"
    assert_json_error(client.get("/p?q=%C3%A9"), 400, "M_UNKNOWN", "Query parameter 'q' must be ascii")


def test_parse_string_utf8_when_asked() -> None:
    client = client_for(lambda request: parse_string(request, "q", encoding="utf-8"))
    assert value_of(client, "q=%C3%A9") == "\u00e9"


def test_parse_string_allowed_values() -> None:
    client = client_for(lambda request: parse_string(request, "dir", default="f", allowed_values=["f", "b"]))
    assert value_of(client, "") == "f"
    assert value_of(client, "dir=b") == "b"
    assert_json_error(
        client.get("/p?dir=x"), 400, "M_INVALID_PARAM", "Query parameter 'dir' must be one of ['f', 'b']"
    )


def test_parse_string_default_is_not_checked_against_allowed_values() -> None:
    client = client_for(lambda request: parse_string(request, "dir", default="z", allowed_values=["f"]))
    assert value_of(client, "") == "z"


def test_parse_string_required_missing() -> None:
    client = client_for(lambda request: parse_string(request, "from", required=True))
    assert_json_error(client.get("/p"), 400, "M_MISSING_PARAM", "Missing string query parameter 'from'")


def test_parse_string_blank_value_is_present() -> None:
    client = client_for(lambda request: parse_string(request, "from", default="x"))
    assert value_of(client, "from=") == ""


def test_parse_strings_checks_every_value() -> None:
    args = {b"dir": [b"f", b"x"]}
    with pytest.raises(SynapseError) as caught:
        parse_strings_from_args(args, "dir", allowed_values=["f", "b"])
    assert caught.value.errcode == "M_INVALID_PARAM"


def test_parse_bytes_required_missing() -> None:
    with pytest.raises(SynapseError) as caught:
        parse_bytes_from_args({}, "token", required=True)
    assert (caught.value.code, caught.value.errcode) == (400, "M_MISSING_PARAM")
    assert caught.value.msg == "Missing string query parameter token"


def test_parse_bytes_keeps_non_ascii() -> None:
    client = client_for(lambda request: parse_bytes_from_args(request.args, "q").decode("utf-8"))
    assert value_of(client, "q=%E2%98%83") == "\u2603"


# -- parse_enum ------------------------------------------------------------------------------


class Direction(enum.Enum):
    FORWARDS = "f"
    BACKWARDS = "b"


def test_parse_enum() -> None:
    client = client_for(lambda request: parse_enum(request, "dir", Direction, Direction.FORWARDS).name)
    assert value_of(client, "") == "FORWARDS"
    assert value_of(client, "dir=b") == "BACKWARDS"
    assert_json_error(client.get("/p?dir=sideways"), 400, "M_INVALID_PARAM")


def test_parse_enum_required_missing() -> None:
    client = client_for(lambda request: parse_enum(request, "dir", Direction, required=True))
    assert_json_error(client.get("/p"), 400, "M_MISSING_PARAM")


def test_parse_enum_refuses_non_string_enums() -> None:
    class Numbers(enum.Enum):
        ONE = 1

    client = client_for(lambda request: parse_enum(request, "n", Numbers))
    assert client.get("/p?n=1").status_code == 500


# -- parse_json ------------------------------------------------------------------------------


def test_parse_json_query_parameter() -> None:
    client = client_for(lambda request: parse_json(request, "filter"))
    assert value_of(client, "filter=%7B%22limit%22%3A5%7D") == {"limit": 5}
    assert value_of(client, "") is None


def test_parse_json_is_unquoted_once_more_as_in_synapse() -> None:
    client = client_for(lambda request: parse_json(request, "filter"))
    assert value_of(client, "filter=%257B%257D") == {}


def test_parse_json_invalid_is_not_json() -> None:
    client = client_for(lambda request: parse_json(request, "filter"))
    assert_json_error(
        client.get("/p?filter=%7Bnope"),
        400,
        "M_NOT_JSON",
        "Query parameter filter must be a valid JSON object",
    )
    assert_json_error(client.get("/p?filter=NaN"), 400, "M_NOT_JSON")


def test_parse_json_required_missing() -> None:
    with pytest.raises(SynapseError) as caught:
        parse_json_from_args({}, "filter", required=True)
    assert caught.value.errcode == "M_MISSING_PARAM"


# -- JSON bodies, pydantic and assert_params_in_dict -----------------------------------------


def test_json_value_and_object_bodies() -> None:
    # Translated from Synapse's test_parse_json_value / test_parse_json_object.
    value = client_for(parse_json_value_from_request, "POST")
    assert value_of(value, "", "POST", json.dumps({"foo": 1}).encode()) == {"foo": 1}
    assert value_of(value, "", "POST", b'["foo"]') == ["foo"]
    for bad in (b"", b"\xff\x00", b"foo", b'{"foo": Infinity}'):
        assert_json_error(value.post("/p", data=bad), 400, "M_NOT_JSON")
    obj = client_for(lambda request: parse_json_object_from_request(request, allow_empty_body=True), "POST")
    assert value_of(obj, "", "POST", b"") == {}
    assert_json_error(obj.post("/p", data=b'["foo"]'), 400, "M_BAD_JSON")


class Profile(BaseModel):
    displayname: str
    age: int = 0

    @field_validator("displayname")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("displayname must not be blank")
        return value


@pytest.fixture
def model_client() -> Client:
    return client_for(
        lambda request: parse_and_validate_json_object_from_request(request, Profile).model_dump(), "POST"
    )


def test_pydantic_model_validated(model_client: Client) -> None:
    assert value_of(model_client, "", "POST", b'{"displayname": "Ann", "age": 3}') == {
        "displayname": "Ann",
        "age": 3,
    }


def test_pydantic_missing_field_is_missing_param(model_client: Client) -> None:
    body = assert_json_error(model_client.post("/p", data=b'{"age": 3}'), 400, "M_MISSING_PARAM")
    assert "displayname" in body["error"]


def test_pydantic_validator_refusal_is_invalid_param(model_client: Client) -> None:
    body = assert_json_error(model_client.post("/p", data=b'{"displayname": " "}'), 400, "M_INVALID_PARAM")
    assert "must not be blank" in body["error"]


def test_pydantic_other_errors_are_bad_json(model_client: Client) -> None:
    assert_json_error(model_client.post("/p", data=b'{"displayname": 5}'), 400, "M_BAD_JSON")
    assert_json_error(model_client.post("/p", data=b'{"age": "x"}'), 400, "M_BAD_JSON")  # two errors
    assert_json_error(model_client.post("/p", data=b"[]"), 400, "M_BAD_JSON")
    assert_json_error(model_client.post("/p", data=b"{"), 400, "M_NOT_JSON")


def test_validate_json_object_returns_the_model() -> None:
    profile = validate_json_object({"displayname": "Bo"}, Profile)
    assert isinstance(profile, Profile)
    assert profile.displayname == "Bo"


def test_assert_params_in_dict() -> None:
    assert_params_in_dict({"a": 1, "b": None}, ["a", "b"])
    with pytest.raises(SynapseError) as caught:
        assert_params_in_dict({"a": 1}, ["a", "b", "c"])
    assert (caught.value.code, caught.value.errcode) == (400, "M_MISSING_PARAM")
    assert caught.value.msg == "Missing params: ['b', 'c']"


def test_names_exported_at_top_level_and_restservlet_from_servlet() -> None:
    from synwsgi import servlet

    for name in (
        "parse_integer_from_args",
        "parse_boolean_from_args",
        "parse_string_from_args",
        "parse_strings_from_args",
        "parse_bytes_from_args",
        "parse_enum",
        "parse_json",
        "parse_json_from_args",
        "assert_params_in_dict",
        "validate_json_object",
        "parse_and_validate_json_object_from_request",
    ):
        assert getattr(synwsgi, name) is getattr(servlet, name)
    assert servlet.RestServlet is synwsgi.RestServlet


# -- any input: a 200 or a 4xx with an errcode, never a 500 ----------------------------------


@pytest.fixture(scope="module")
def everything_client() -> Client:
    def handler(request: SynapseRequest) -> Any:
        direction = parse_enum(request, "e", Direction)
        return {
            "i": parse_integer(request, "i", negative=True),
            "b": parse_boolean(request, "b"),
            "s": parse_string(request, "s", allowed_values=None),
            "u": parse_string(request, "u", encoding="utf-8"),
            "ss": parse_strings_from_args(request.args, "ss"),
            "e": direction.value if direction is not None else None,
            "j": parse_json(request, "j"),
        }

    return client_for(handler)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["i", "b", "s", "u", "ss", "e", "j"]),
    raw=st.binary(max_size=40),
    repeat=st.integers(min_value=1, max_value=3),
)
def test_any_query_value_is_a_200_or_a_400(
    everything_client: Client, name: str, raw: bytes, repeat: int
) -> None:
    value = urllib.parse.quote_from_bytes(raw, safe="")
    response = everything_client.get("/p?" + "&".join([f"{name}={value}"] * repeat))
    assert response.status_code in (200, 400), (raw, response.data)
    body = response.get_json()
    if response.status_code == 400:
        assert body["errcode"] in ("M_INVALID_PARAM", "M_UNKNOWN", "M_NOT_JSON")
