"""Issue 10, section 4: `client_patterns` routes through a real `JsonResource`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _helpers import assert_json_response, assert_unrecognized, make_client
from werkzeug.test import Client

import synwsgi
from synwsgi import InteractiveAuthIncompleteError, JsonResource, RestServlet, SynapseRequest
from synwsgi.rest import CLIENT_API_PREFIX, client_patterns, interactive_auth_handler


def test_default_pattern_is_synapses() -> None:
    (pattern,) = client_patterns("/rooms/(?P<room_id>[^/]*)/state$")
    assert isinstance(pattern, re.Pattern)
    assert pattern.pattern == "^/_matrix/client/(r0|v3|unstable)/rooms/(?P<room_id>[^/]*)/state$"
    assert CLIENT_API_PREFIX == "/_matrix/client"


@pytest.mark.parametrize(
    ("kwargs", "version"),
    [
        ({"releases": ("v3",), "unstable": False}, "v3"),
        ({"releases": (), "unstable": True}, "unstable"),
        ({"releases": ("r0",), "unstable": False, "v1": True}, "(api/v1|r0)"),
        ({"v1": True}, "(api/v1|r0|v3|unstable)"),
    ],
)
def test_versions(kwargs: dict[str, Any], version: str) -> None:
    (pattern,) = client_patterns("/x$", **kwargs)
    assert pattern.pattern == f"^/_matrix/client/{version}/x$"


def test_no_version_at_all_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        client_patterns("/x$", releases=(), unstable=False)


class RoomStateServlet(RestServlet):
    PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]*)/state/(?P<event_type>[^/]*)$")

    def on_GET(self, request: SynapseRequest, room_id: str, event_type: str) -> tuple[int, Any]:
        return 200, {"room_id": room_id, "event_type": event_type}


class VersionsOnlyServlet(RestServlet):
    PATTERNS = client_patterns("/versions-only$", releases=(), unstable=False, v1=True)

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"ok": True}


@pytest.fixture(params=["/", "/_matrix/client"])
def client(request: pytest.FixtureRequest) -> Client:
    resource = JsonResource()
    RoomStateServlet().register(resource)
    VersionsOnlyServlet().register(resource)
    return make_client({request.param: resource})


@pytest.mark.parametrize("version", ["r0", "v3", "unstable"])
def test_routes_every_version(client: Client, version: str) -> None:
    response = client.get(f"/_matrix/client/{version}/rooms/!a:b/state/m.room.name")
    assert assert_json_response(response, 200) == {"room_id": "!a:b", "event_type": "m.room.name"}


def test_encoded_slash_stays_inside_the_parameter(client: Client) -> None:
    response = client.get("/_matrix/client/v3/rooms/%23alias%2Fwith%2Fslash%3Aexample.org/state/m.x%2Fy")
    assert assert_json_response(response, 200) == {
        "room_id": "#alias/with/slash:example.org",
        "event_type": "m.x/y",
    }


def test_other_versions_and_longer_paths_are_unrecognized(client: Client) -> None:
    assert_unrecognized(client.get("/_matrix/client/v4/rooms/!a:b/state/m.room.name"))
    assert_unrecognized(client.get("/_matrix/client/v3/rooms/!a:b/state/m.room.name/extra"))
    assert_unrecognized(client.get("/_matrix/client/v3/versions-only"))
    assert assert_json_response(client.get("/_matrix/client/api/v1/versions-only"), 200) == {"ok": True}


def test_exported_at_top_level() -> None:
    assert synwsgi.client_patterns is client_patterns
    assert synwsgi.interactive_auth_handler is interactive_auth_handler


UIA = {"session": "s1", "flows": [{"stages": ["m.login.dummy"]}], "params": {}}


class UIAServlet(RestServlet):
    PATTERNS = client_patterns("/uia/(?P<kind>[a-z]+)$")

    @interactive_auth_handler
    async def on_POST(self, request: SynapseRequest, kind: str) -> tuple[int, Any]:
        if kind == "incomplete":
            raise InteractiveAuthIncompleteError("s1", UIA)
        return 200, {}

    @interactive_auth_handler
    def on_PUT(self, request: SynapseRequest, kind: str) -> tuple[int, Any]:
        raise InteractiveAuthIncompleteError("s1", UIA)


def test_interactive_auth_handler_gives_the_uia_401() -> None:
    resource = JsonResource()
    UIAServlet().register(resource)
    client = make_client({"/": resource})
    assert assert_json_response(client.post("/_matrix/client/v3/uia/incomplete"), 401) == UIA
    assert assert_json_response(client.put("/_matrix/client/v3/uia/incomplete"), 401) == UIA
    assert assert_json_response(client.post("/_matrix/client/v3/uia/done"), 200) == {}
