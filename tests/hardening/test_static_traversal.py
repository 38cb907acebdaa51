"""No request target escapes a `StaticResource`'s directory.

A temp tree (see `conftest.static_tree`)::

    outer/secret.txt                 OUTER-SECRET-<token>
    outer/root/secret.txt            TOP-SECRET-<token>   (beside the served dir)
    outer/root/static-private/...    the same secret, in a sibling sharing the prefix
    outer/root/static/               served: inside.txt, index.html, sub/inner.txt

Every payload of `traversal_payloads.txt` (>= 200) is sent as a raw target
after the mount, through the test `Client` (RAW_URI/REQUEST_URI as a server
passes them, and again with PATH_INFO only, the fallback for servers without
a raw URI), on two mounts, with GET and HEAD; a sample goes over a raw
socket to gunicorn's gevent worker. Each answer is a 400 or 404 JSON error
and never carries a secret; the files inside stay reachable.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from werkzeug.test import Client

from synwsgi import Site, StaticResource
from tests.integration.servers import Server

from ._util import (
    StaticTree,
    check_invariants,
    is_gunicorn_rejection,
    open_raw,
    raw_json_error,
    request_bytes,
    send_raw,
)

PAYLOAD_FILE = Path(__file__).with_name("traversal_payloads.txt")
MOUNTS = ("/static", "/deep/er/static")


def load_payloads() -> list[str]:
    payloads = []
    for line in PAYLOAD_FILE.read_text(encoding="utf-8").split("\n"):
        if line and not line.startswith("#"):
            payloads.append(line)
    return payloads


PAYLOADS = load_payloads()


def test_the_corpus_is_big_enough() -> None:
    assert len(PAYLOADS) >= 200
    assert len(set(PAYLOADS)) == len(PAYLOADS)


def _fill(payload: str, tree: StaticTree) -> str:
    secret_abs = str(tree.secret)
    return (
        payload.replace("{secret_abs_enc}", quote(secret_abs, safe=""))
        .replace("{secret_abs}", secret_abs)
        .replace("{root_abs}", str(tree.root))
    )


def _as_wire_text(target: str) -> str:
    """A target with non-ASCII characters as a server hands them on: UTF-8 bytes as latin-1 text."""
    return target.encode("utf-8").decode("latin-1")


def _without_raw_uri(app: Site) -> object:
    """`app` behind a server that passes no RAW_URI/REQUEST_URI (PATH_INFO only)."""

    def strip(environ: dict[str, object], start_response: object) -> object:
        environ.pop("RAW_URI", None)
        environ.pop("REQUEST_URI", None)
        return app(environ, start_response)  # type: ignore[arg-type]

    return strip


@pytest.fixture(scope="module")
def static_site(static_tree: StaticTree) -> Site:
    static = StaticResource(static_tree.static)
    return Site({mount: static for mount in MOUNTS})


@pytest.fixture(scope="module")
def static_client(static_site: Site) -> Client:
    return Client(static_site)


@pytest.fixture(scope="module")
def path_info_client(static_site: Site) -> Client:
    return Client(_without_raw_uri(static_site))


def _forbidden(tree: StaticTree) -> list[bytes]:
    return [
        tree.secret_bytes.strip(),
        tree.outer_secret_bytes.strip(),
        b"root:x:0:0",
        b"[fonts]",
    ]


@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"{i:03d}" for i in range(len(PAYLOADS))])
def test_traversal_payload_is_refused(
    static_client: Client, path_info_client: Client, static_tree: StaticTree, payload: str
) -> None:
    target_suffix = _as_wire_text(_fill(payload, static_tree))
    forbidden = _forbidden(static_tree)
    for mount in MOUNTS:
        target = f"{mount}/{target_suffix}"
        for method in ("GET", "HEAD"):
            for mode, client in (("raw", static_client), ("path_info_only", path_info_client)):
                response = open_raw(client, method, target)
                where = f"{method} {target!r} ({mode})"
                check_invariants(response, method)
                assert response.status_code in (400, 404), f"{where}: {response.status}"
                for secret in forbidden:
                    assert secret not in response.data, where
                response.close()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/inside.txt", "inside"),
        ("/%69nside.txt", "inside"),
        ("/inside%2Etxt", "inside"),
        ("/sub/inner.txt", "inner"),
        ("/sub%2finner.txt", "inner"),
        ("/", "index"),
        ("/index.html", "index"),
        ("/sub/../inside.txt", "inside"),
    ],
)
@pytest.mark.parametrize("mount", MOUNTS)
def test_files_inside_are_still_served(
    static_client: Client, static_tree: StaticTree, mount: str, target: str, expected: str
) -> None:
    response = open_raw(static_client, "GET", mount + target)
    check_invariants(response, "GET")
    assert response.status_code == 200, response.data
    content = {
        "inside": static_tree.inside_bytes,
        "inner": b"INNER-OK\n",
        "index": b"<!DOCTYPE html><title>index</title>\n",
    }[expected]
    assert response.data == content
    head = open_raw(static_client, "HEAD", mount + target)
    assert head.status_code == 200 and head.data == b""
    assert head.headers.get("Content-Length") == str(len(content))


def test_anti_framing_headers_on_static_files(static_client: Client) -> None:
    response = open_raw(static_client, "GET", "/static/index.html")
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in (response.headers.get("Content-Security-Policy") or "")


def _wire_sample() -> list[str]:
    sample = PAYLOADS[::4]
    sample += [p for p in PAYLOADS if not p.isascii() or "\\" in p or "%00" in p][:30]
    return list(dict.fromkeys(sample))


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
def test_traversal_sample_on_the_wire(apps_server: Server, static_tree: StaticTree) -> None:
    forbidden = _forbidden(static_tree)
    failures: list[str] = []
    answered = rejected_by_gunicorn = 0
    sample = _wire_sample()
    for payload in sample:
        target = ("/static/" + _fill(payload, static_tree)).encode("utf-8")
        response = send_raw(apps_server, request_bytes("GET", target), timeout=10)
        for secret in forbidden:
            if secret in response.body:
                failures.append(f"{target!r}: secret leaked")
        if is_gunicorn_rejection(response) and response.status == 400:
            rejected_by_gunicorn += 1
            continue
        answered += 1
        if response.status not in (400, 404):
            failures.append(f"{target!r}: {response.status}")
            continue
        try:
            raw_json_error(response)
        except AssertionError as exc:
            failures.append(f"{target!r}: not a JSON error ({exc})")
    assert not failures, "\n".join(failures)
    assert answered > len(sample) // 2, (answered, rejected_by_gunicorn)
    ok = send_raw(apps_server, request_bytes("GET", b"/static/inside.txt"))
    assert ok.status == 200 and ok.body == static_tree.inside_bytes
