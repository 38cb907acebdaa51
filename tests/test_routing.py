"""Behaviour 1 and 2: routing on the raw path, HEAD, 404/405 and the legacy 400."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pytest
from _helpers import (
    UNRECOGNIZED_BODY,
    assert_headers_unique,
    assert_json_response,
    assert_unrecognized,
    json_client,
    json_resource,
    make_client,
)
from werkzeug.test import Client

from synwsgi import (
    DirectServeJsonResource,
    JsonResource,
    RestServlet,
    ServerConfig,
    Site,
    SynapseRequest,
)


def echo_params(request: SynapseRequest, **params: Any) -> tuple[int, Any]:
    return 200, {"params": params}


def named(label: str) -> Any:
    def callback(request: SynapseRequest, **params: Any) -> tuple[int, Any]:
        return 200, {"handler": label, "params": params}

    return callback


ROOM_RULE = "/rooms/<room_id>/state/<event_type>"
ROOM_REGEX = re.compile(r"^/rooms/(?P<room_id>[^/]*)/state/(?P<event_type>[^/]*)$")


@pytest.fixture(params=["rule", "regex"])
def room_client(request: pytest.FixtureRequest) -> Client:
    pattern = ROOM_RULE if request.param == "rule" else ROOM_REGEX
    return json_client(("GET", [pattern], echo_params, "RoomServlet"))


def params_of(client: Client, path: str) -> dict[str, Any]:
    response = client.get(path)
    body = assert_json_response(response, 200)
    params: dict[str, Any] = body["params"]
    return params


# -- parameters come from the raw path, unquoted afterwards ------------------------------


def test_encoded_slash_stays_inside_parameter(room_client: Client) -> None:
    params = params_of(room_client, "/rooms/%21a%2Fb%3Aexample.org/state/m.room.member")
    assert params == {"room_id": "!a/b:example.org", "event_type": "m.room.member"}


def test_percent_encoded_utf8_becomes_text(room_client: Client) -> None:
    params = params_of(room_client, "/rooms/%E2%98%83/state/caf%C3%A9")
    assert params == {"room_id": "\u2603", "event_type": "caf\u00e9"}


def test_plain_parameters(room_client: Client) -> None:
    assert params_of(room_client, "/rooms/!r:hs/state/m.topic") == {
        "room_id": "!r:hs",
        "event_type": "m.topic",
    }


def test_encoded_question_mark_and_percent_stay_in_parameter(room_client: Client) -> None:
    params = params_of(room_client, "/rooms/a%3Fb%25c/state/%23x")
    assert params == {"room_id": "a?b%c", "event_type": "#x"}


@pytest.mark.parametrize(
    "path",
    [
        "/rooms/%FF/state/x",
        "/rooms/x/state/%C3",
        "/rooms/%E2%98/state/x",
        "/rooms/%ED%A0%80/state/x",  # an encoded surrogate is not UTF-8
    ],
)
def test_invalid_utf8_in_parameter_is_a_400_json_error(room_client: Client, path: str) -> None:
    body = assert_json_response(room_client.get(path), 400)
    assert isinstance(body["errcode"], str) and body["errcode"].startswith("M_"), body
    assert isinstance(body["error"], str)


def test_query_string_never_reaches_kwargs(room_client: Client) -> None:
    params = params_of(room_client, "/rooms/r1/state/t1?room_id=evil&event_type=evil&other=1")
    assert params == {"room_id": "r1", "event_type": "t1"}


def test_query_string_with_encoded_slash_is_not_part_of_the_path(room_client: Client) -> None:
    params = params_of(room_client, "/rooms/r1/state/t1?x=%2F..%2Fy")
    assert params == {"room_id": "r1", "event_type": "t1"}


def test_query_string_does_not_affect_static_rule() -> None:
    client = json_client(("GET", ["/versions"], echo_params, "Versions"))
    assert params_of(client, "/versions?a=b&c") == {}


def test_regex_optional_group_is_none_when_absent() -> None:
    pattern = re.compile(r"^/state/(?P<event_type>[^/]*)(/(?P<state_key>[^/]*))?$")
    client = json_client(("GET", [pattern], echo_params, "State"))
    assert params_of(client, "/state/m.topic") == {"event_type": "m.topic", "state_key": None}
    assert params_of(client, "/state/m.topic/%40a%3Ab") == {"event_type": "m.topic", "state_key": "@a:b"}
    assert params_of(client, "/state/m.topic/") == {"event_type": "m.topic", "state_key": ""}


@pytest.mark.parametrize(
    ("pattern", "paths"),
    [
        (r"^/old/path$|^/new/path$", ["/old/path", "/new/path"]),
        (r"/r0/thing|/v3/thing", ["/r0/thing", "/v3/thing"]),
        (r"^/a/(?P<x>[^/]*)$|^/b/(?P<y>[^/]*)$", ["/a/1", "/b/2"]),
        (r"^/(?:r0|v3)/thing$", ["/r0/thing", "/v3/thing"]),
        (r"^/x/(r0|v3)/thing$", ["/x/r0/thing", "/x/v3/thing"]),
        (r"^/a\/b\.c$", ["/a/b.c"]),
        (r"^/ab?/c$", ["/a/c", "/ab/c"]),
        (r"^/a/b*c$", ["/a/c", "/a/bbc"]),
        (r"(?i)^/CASE/x$", ["/case/x", "/CASE/X"]),
    ],
)
def test_every_match_of_a_regex_pattern_is_routed(pattern: str, paths: list[str]) -> None:
    client = json_client(("GET", [re.compile(pattern)], echo_params, "S"))
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert_unrecognized(client.get("/not/matching"))


def test_werkzeug_converters_work_on_raw_paths() -> None:
    client = json_client(
        ("GET", ["/items/<int:n>"], echo_params, "Items"),
        ("GET", ["/files/<path:rest>"], echo_params, "Files"),
    )
    assert params_of(client, "/items/42") == {"n": 42}
    assert params_of(client, "/files/a/b%2Fc/%E2%98%83") == {"rest": "a/b/c/\u2603"}
    assert_unrecognized(client.get("/items/abc"))


def test_patterns_match_the_full_path() -> None:
    client = json_client(
        ("GET", ["/a/<x>"], echo_params, "A"),
        ("GET", [re.compile(r"/b/(?P<x>[^/]*)")], echo_params, "B"),
    )
    assert params_of(client, "/a/1") == {"x": "1"}
    assert params_of(client, "/b/1") == {"x": "1"}
    for path in ("/a/1/extra", "/prefix/a/1", "/b/1/extra", "/prefix/b/1"):
        assert_unrecognized(client.get(path))


# -- slashes are significant ---------------------------------------------------------------


def test_double_slash_is_not_merged_nor_redirected() -> None:
    client = json_client(("GET", ["/a/b", "/c/<x>/d"], echo_params, "S"))
    for path in ("/a//b", "/c//d", "/c/x//d"):
        response = client.get(path)
        assert "Location" not in response.headers
        assert_unrecognized(response)


def test_double_slash_gives_an_empty_parameter_to_a_regex_that_allows_it() -> None:
    client = json_client(("GET", [ROOM_REGEX], echo_params, "S"))
    assert params_of(client, "/rooms//state/x") == {"room_id": "", "event_type": "x"}


def test_trailing_slash_is_significant() -> None:
    client = json_client(
        ("GET", ["/no-slash"], named("no-slash"), "S"),
        ("GET", ["/slash/"], named("slash"), "S"),
        ("GET", ["/param/<x>"], named("param"), "S"),
    )
    assert client.get("/no-slash").get_json()["handler"] == "no-slash"
    assert client.get("/slash/").get_json()["handler"] == "slash"
    for path in ("/no-slash/", "/slash", "/param/x/"):
        response = client.get(path)
        assert "Location" not in response.headers
        assert_unrecognized(response)


# -- order -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "winner"),
    [
        (["/rooms/<room_id>", "/rooms/special"], "first"),
        (["/rooms/special", "/rooms/<room_id>"], "first"),
        ([re.compile(r"^/rooms/(?P<room_id>[^/]*)$"), "/rooms/special"], "first"),
        (["/rooms/special", re.compile(r"^/rooms/(?P<room_id>[^/]*)$")], "first"),
        ([re.compile(r"^/rooms/.*$"), re.compile(r"^/rooms/special$")], "first"),
        ([re.compile(r"^/rooms/special$"), re.compile(r"^/rooms/.*$")], "first"),
        (["/<a>/<b>", "/rooms/special"], "first"),
        ([re.compile(r"^/(?P<a>.*)$"), "/rooms/special"], "first"),
    ],
)
def test_first_registered_pattern_wins(patterns: list[Any], winner: str) -> None:
    client = json_client(
        ("GET", [patterns[0]], named("first"), "First"),
        ("GET", [patterns[1]], named("second"), "Second"),
    )
    assert client.get("/rooms/special").get_json()["handler"] == winner


def test_first_registered_wins_across_servlets_and_methods() -> None:
    resource = JsonResource()

    class Specific(RestServlet):
        PATTERNS = ["/x/special"]

        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {"handler": "specific"}

    class Generic(RestServlet):
        PATTERNS = [re.compile(r"^/x/(?P<name>[^/]*)$")]

        def on_GET(self, request: SynapseRequest, name: str) -> tuple[int, Any]:
            return 200, {"handler": "generic", "name": name}

        def on_PUT(self, request: SynapseRequest, name: str) -> tuple[int, Any]:
            return 200, {"handler": "generic-put", "name": name}

    Specific().register(resource)
    Generic().register(resource)
    client = make_client({"/": resource})
    assert client.get("/x/special").get_json() == {"handler": "specific"}
    assert client.get("/x/other").get_json() == {"handler": "generic", "name": "other"}
    assert client.put("/x/special").get_json() == {"handler": "generic-put", "name": "special"}


# -- where the raw path comes from --------------------------------------------------------


def without_raw_uri(app: Site) -> Any:
    """A WSGI middleware hiding RAW_URI/REQUEST_URI, as some servers do."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ.pop("RAW_URI", None)
        environ.pop("REQUEST_URI", None)
        return app(environ, start_response)

    return middleware


def test_path_info_is_requoted_when_no_raw_uri() -> None:
    site = Site({"/": json_resource(("GET", [ROOM_RULE], echo_params, "S"))})
    client = Client(without_raw_uri(site))
    assert params_of(client, "/rooms/%E2%98%83/state/a%20b") == {"room_id": "\u2603", "event_type": "a b"}
    assert params_of(client, "/rooms/%3F%23/state/x?q=1") == {"room_id": "?#", "event_type": "x"}


def test_raw_uri_is_preferred_over_path_info() -> None:
    client = json_client(("GET", [ROOM_RULE], echo_params, "S"))
    response = client.get(
        "/ignored",
        environ_overrides={"RAW_URI": "/rooms/a%2Fb/state/c?x=1", "REQUEST_URI": "/rooms/a%2Fb/state/c?x=1"},
    )
    assert assert_json_response(response, 200)["params"] == {"room_id": "a/b", "event_type": "c"}


def test_absolute_form_target_is_reduced_to_its_path() -> None:
    client = json_client(("GET", [ROOM_RULE], echo_params, "S"))
    target = "http://example.org:8008/rooms/a%2Fb/state/c?x=1"
    response = client.get("/ignored", environ_overrides={"RAW_URI": target, "REQUEST_URI": target})
    assert assert_json_response(response, 200)["params"] == {"room_id": "a/b", "event_type": "c"}


def test_double_slash_target_is_a_path_not_an_authority() -> None:
    client = json_client(("GET", [re.compile(r"^//host/(?P<x>[^/]*)$")], echo_params, "S"))
    response = client.get("/ignored", environ_overrides={"RAW_URI": "//host/y", "REQUEST_URI": "//host/y"})
    assert assert_json_response(response, 200)["params"] == {"x": "y"}


# -- mounting ----------------------------------------------------------------------------------


def test_longest_prefix_wins_on_segment_boundaries() -> None:
    outer = json_resource(("GET", [re.compile(r"^/a.*$")], named("outer"), "Outer"))
    inner = json_resource(("GET", [re.compile(r"^/a/b.*$")], named("inner"), "Inner"))
    client = make_client({"/a": outer, "/a/b": inner})
    assert client.get("/a/b/c").get_json()["handler"] == "inner"
    assert client.get("/a/b").get_json()["handler"] == "inner"
    assert client.get("/a/bc").get_json()["handler"] == "outer"
    assert client.get("/a/x").get_json()["handler"] == "outer"


def test_path_under_no_prefix_is_a_json_404() -> None:
    client = make_client({"/api": json_resource(("GET", ["/api/x"], echo_params, "S"))})
    assert_unrecognized(client.get("/other"))
    assert_unrecognized(client.get("/apix"))
    assert_unrecognized(client.post("/"))


# -- HEAD, 404, 405 ------------------------------------------------------------------------------


def test_head_is_served_by_get_with_same_headers_and_no_body() -> None:
    seen: list[str] = []

    def on_get(request: SynapseRequest) -> tuple[int, Any]:
        seen.append(request.method)
        return 200, {"hello": "world", "n": list(range(50))}

    client = json_client(("GET", ["/thing"], on_get, "Thing"))
    get = client.get("/thing")
    head = client.head("/thing")
    assert seen == ["GET", "HEAD"]
    assert head.status_code == 200
    assert head.data == b""
    assert get.data != b""
    assert head.headers.getlist("Content-Length") == [str(len(get.data))]
    assert sorted(head.headers.items()) == sorted(get.headers.items())
    assert_headers_unique(head)


def test_head_on_direct_serve_resource_uses_on_get() -> None:
    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {"a": "b"}

    client = make_client({"/r": Res()})
    get = client.get("/r")
    head = client.head("/r")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(get.data)) == "9"


def test_head_of_an_error_keeps_content_length_and_drops_the_body() -> None:
    client = json_client(("GET", ["/x"], echo_params, "S"))
    head = client.head("/missing")
    assert head.status_code == 404
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(UNRECOGNIZED_BODY))


def test_unknown_path_is_404_unrecognized() -> None:
    client = json_client(("GET", ["/known"], echo_params, "S"))
    response = client.get("/unknown")
    assert_unrecognized(response)
    assert "Allow" not in response.headers


def test_known_path_other_method_is_405_with_allow() -> None:
    client = json_client(
        ("GET", ["/thing/<x>"], echo_params, "S"),
        ("PUT", [re.compile(r"^/thing/(?P<x>[^/]*)$")], echo_params, "S"),
        ("POST", ["/other"], echo_params, "S"),
    )
    response = client.delete("/thing/1")
    assert_unrecognized(response, 405)
    allowed = [m.strip() for m in response.headers["Allow"].split(",")]
    assert sorted(allowed) == ["GET", "HEAD", "PUT"]
    assert_headers_unique(response)

    response = client.get("/other")
    assert_unrecognized(response, 405)
    assert [m.strip() for m in response.headers["Allow"].split(",")] == ["POST"]


def test_direct_serve_resource_405_with_allow() -> None:
    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {}

        def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {}

    client = make_client({"/r": Res()})
    response = client.put("/r")
    assert_unrecognized(response, 405)
    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["GET", "HEAD", "POST"]


def test_legacy_unrecognized_400() -> None:
    config = ServerConfig(legacy_unrecognized_400=True)
    client = json_client(("GET", ["/known"], echo_params, "S"), config=config)
    for response in (client.get("/unknown"), client.post("/known")):
        assert response.status_code == 400
        assert response.data == UNRECOGNIZED_BODY
        assert_json_response(response, 400)
    assert_json_response(client.get("/known"), 200)


def test_legacy_unrecognized_400_on_direct_serve_resource() -> None:
    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {}

    client = make_client({"/r": Res()}, ServerConfig(legacy_unrecognized_400=True))
    response = client.delete("/r")
    assert response.status_code == 400
    assert response.data == UNRECOGNIZED_BODY
