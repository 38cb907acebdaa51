"""Werkzeug private state synwsgi relies on, pinned so that an upgrade that
changes it fails here, loudly, instead of somewhere in routing or requests."""

from __future__ import annotations

import re

from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from synwsgi import SynapseRequest
from synwsgi._internal.routing import RawPathConverter, RawUnicodeConverter, new_map, rule_parts


def test_rule_parts_reads_werkzeugs_parsed_rule() -> None:
    rule = Rule("/rooms/<room_id>/state/<path:rest>", endpoint="x")
    new_map().add(rule)
    parts = rule_parts(rule)
    assert (
        "".join(text if name is None else f"<{name}>" for name, text in parts)
        == "/rooms/<room_id>/state/<rest>"
    )
    converters = {name: part for name, part in parts if name is not None}
    assert isinstance(converters["room_id"], RawUnicodeConverter)
    assert isinstance(converters["rest"], RawPathConverter)


def test_the_attributes_werkzeugs_request_init_sets_are_the_ones_synapse_request_fills_lazily() -> None:
    """`SynapseRequest.__init__` skips Werkzeug's; each attribute it would set must exist."""
    environ = EnvironBuilder("/a?b=c", headers={"X": "y"}).get_environ()
    werkzeug_sets = set(vars(Request(environ)))
    provided = {"environ", "method", "shallow", "headers", "scheme", "server", "root_path"}
    provided |= {"path", "query_string", "remote_addr"}
    assert werkzeug_sets == provided, f"Werkzeug's Request.__init__ changed: {werkzeug_sets ^ provided}"
    ours = SynapseRequest(environ)
    for name in werkzeug_sets:
        assert getattr(ours, name) == getattr(Request(environ), name) or name in ("environ", "headers"), name
    assert dict(ours.headers) == dict(Request(environ).headers)


def test_raw_regex_routes_need_no_private_state() -> None:
    rule_regex = re.compile(r"^/x/(?P<a>[^/]*)$")
    assert rule_regex.fullmatch("/x/%2F")
