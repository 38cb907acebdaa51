"""Group a: in-process cost of one request, WSGI callable called directly."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from bench.candidates import (
    SYNWSGI,
    SYNWSGI_MYPYC,
    SYNWSGI_OBSERVED,
    SYNWSGI_OBSERVED_SPEC,
    load_peer,
    load_synwsgi_app,
)
from bench.compiled import ChildSamplers
from bench.model import Group, Row, Target
from bench.peers import PEER_MODULES
from bench.peers.common import JSON_HEADERS, NOT_FOUND_BODY, state_body
from bench.timing import NS_PER_US, Prepared, calibrate, loop_sampler, measure_group
from bench.wsgi_call import (
    Captured,
    WSGIApp,
    call_once,
    capture,
    make_environ,
    null_app,
)

BASELINE = "raw"
FALCON = "falcon"
VS_FALCON = "synwsgi (vs falcon)"
VS_FALCON_MYPYC = "synwsgi (mypyc, vs falcon)"
HARNESS = "harness (null app)"
NAMES: tuple[str, ...] = (*PEER_MODULES, SYNWSGI, SYNWSGI_MYPYC, SYNWSGI_OBSERVED, HARNESS)

ROOM_ID = "!abcDEF123:example.org"
EVENT_TYPE = "m.room.power_levels"


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    target: str  # raw request target, as on the request line
    status: str  # expected status code
    body: bytes
    limit: float  # synwsgi target: at most ``limit`` x raw
    falcon_limit: float  # and at most ``falcon_limit`` x Falcon


STATE_CASE = Case(
    "inproc-route",
    "In-process GET state route",
    "/_matrix/client/v3/rooms/%21abcDEF123%3Aexample.org/state/m.room.power_levels",
    "200",
    state_body(ROOM_ID, EVENT_TYPE),
    2.0,
    0.9,
)
NOT_FOUND_CASE = Case(
    "inproc-404",
    "In-process unknown path (404)",
    "/_matrix/client/v3/no/such/endpoint?since=s72594_4483_1934",
    "404",
    NOT_FOUND_BODY,
    8.0,
    1.0,
)
CASES = (STATE_CASE, NOT_FOUND_CASE)


class WrongStatus(Exception):
    """The app answered with another status code: timing it would mislead."""


def check_response(got: Captured, case: Case) -> str:
    """Raise on a wrong status; return a note on body/header differences."""
    if not got.status.startswith(case.status):
        raise WrongStatus(f"expected {case.status}, got {got.status!r}")
    problems = [] if got.body == case.body else [f"body {got.body[:60]!r}"]
    expected = [*JSON_HEADERS, ("Content-Length", str(len(case.body)))]
    problems += [f"{k}: {got.header(k)!r}" for k, v in expected if got.header(k) != v]
    return "differs: " + "; ".join(problems) if problems else ""


def _load(name: str) -> WSGIApp:
    if name == HARNESS:
        return null_app
    if name == SYNWSGI:
        return load_synwsgi_app()
    if name == SYNWSGI_OBSERVED:
        return load_synwsgi_app(SYNWSGI_OBSERVED_SPEC)
    return load_peer(name)


def _prepare(name: str, case: Case, round_seconds: float, children: list[ChildSamplers]) -> Prepared:
    """(round sampler in us/request, correctness note) for ``name``; the
    compiled build is sampled in a child process (see `bench/compiled.py`)."""
    if name == SYNWSGI_MYPYC:
        child = ChildSamplers("bench.inproc:compiled_samplers", [case.key, round_seconds])
        children.append(child)
        return partial(child.sample, SYNWSGI_MYPYC), child.notes[SYNWSGI_MYPYC]
    app = _load(name)
    environ = make_environ(case.target)
    note = "" if name == HARNESS else check_response(capture(app, environ), case)
    work = partial(call_once, app, environ)
    return loop_sampler(work, calibrate(work, round_seconds), 1, NS_PER_US), note


def compiled_samplers(case_key: str, round_seconds: float) -> dict[str, Prepared]:
    """In the compiled child: the synwsgi app's sampler, under the mypyc row's name."""
    case = next(c for c in CASES if c.key == case_key)
    return {SYNWSGI_MYPYC: _prepare(SYNWSGI, case, round_seconds, [])}


def run_case(case: Case, rounds: int, round_seconds: float, budget_s: float) -> Group:
    group = Group(
        case.key,
        case.title,
        "us/req",
        baseline=BASELINE,
        targets={
            name: Target("<=", case.limit, f"<={case.limit:g}x raw", BASELINE)
            for name in (SYNWSGI, SYNWSGI_MYPYC)
        },
        note=f"GET {case.target}; includes harness cost (see '{HARNESS}' row)",
    )
    children: list[ChildSamplers] = []
    prepare = partial(_prepare, case=case, round_seconds=round_seconds, children=children)
    try:
        measure_group(group, NAMES, prepare, rounds, budget_s)
    finally:
        for child in children:
            child.close()
    # The same samples judged against Falcon (one target per row).
    for name, vs_name in ((SYNWSGI, VS_FALCON), (SYNWSGI_MYPYC, VS_FALCON_MYPYC)):
        mine = group.row(name)
        if mine is not None:
            row = Row(vs_name, list(mine.samples), mine.status, mine.note)
            group.rows.insert(group.rows.index(mine) + 1, row)
            label = f"<={case.falcon_limit:g}x falcon"
            group.targets[vs_name] = Target("<=", case.falcon_limit, label, FALCON)
    return group


def run_inproc(rounds: int, round_seconds: float, budget_s: float) -> list[Group]:
    return [run_case(case, rounds, round_seconds, budget_s / len(CASES)) for case in CASES]
