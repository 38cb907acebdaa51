"""Group b: cost of one route match over 200 Synapse-like routes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote

from werkzeug.routing import Map, Rule

from bench.candidates import SYNWSGI, import_attr
from bench.model import Group, Target
from bench.routes import ROUTES, VARIABLE
from bench.timing import NS_PER_US, Prepared, calibrate, loop_sampler, measure_group

Matcher = Callable[[str, str], Any]  # (method, raw_path) -> match result
RuleList = Sequence[tuple[str, str]]

WERKZEUG = "werkzeug MapAdapter.match"
SYNAPSE_SCAN = "synapse-style regex scan"
MATCHERS = (WERKZEUG, SYNAPSE_SCAN, SYNWSGI)
TARGET = Target("<=", 3.0, "<=3 us/match")


def werkzeug_matcher(rules: RuleList) -> Matcher:
    """``MapAdapter.match`` on the decoded path, endpoint = rule index."""
    url_map = Map([Rule(rule, endpoint=i, methods=[m]) for i, (m, rule) in enumerate(rules)])
    adapter = url_map.bind("localhost")

    def match(method: str, raw_path: str) -> tuple[Any, Mapping[str, Any]]:
        return adapter.match(unquote(raw_path), method)

    return match


def rule_to_regex(rule: str) -> str:
    """Werkzeug rule -> Synapse-style anchored regex with named groups."""
    out, pos = ["^"], 0
    for var in VARIABLE.finditer(rule):
        out.append(re.escape(rule[pos : var.start()]))
        body = ".*" if var.group("converter") == "path" else "[^/]*"
        out.append(f"(?P<{var.group('name')}>{body})")
        pos = var.end()
    out.append(re.escape(rule[pos:]) + "$")
    return "".join(out)


def synapse_scan_matcher(rules: RuleList) -> Matcher:
    """Synapse's ``JsonResource``: try each path regex in registration order,
    then look the method up; percent-decode the groups afterwards."""
    table: dict[str, dict[str, int]] = {}
    for index, (method, rule) in enumerate(rules):
        table.setdefault(rule_to_regex(rule), {})[method] = index
    compiled = [(re.compile(p), methods) for p, methods in table.items()]

    def match(method: str, raw_path: str) -> tuple[int, dict[str, str]]:
        for pattern, methods in compiled:
            found = pattern.match(raw_path)
            if found:
                endpoint = methods.get(method)
                if endpoint is None:
                    raise LookupError(f"405 {method} {raw_path}")
                groups = found.groupdict()
                return endpoint, {k: unquote(v) for k, v in groups.items()}
        raise LookupError(f"404 {raw_path}")

    return match


@dataclass(frozen=True)
class Case:
    method: str
    raw_path: str
    endpoint: int


def _cases(rules: RuleList, paths: Sequence[str]) -> list[Case]:
    return [Case(m, p, i) for i, ((m, _), p) in enumerate(zip(rules, paths, strict=True))]


def _endpoint_of(result: Any) -> Any:
    """Endpoint of a match result: ``(endpoint, params)`` tuples, objects with
    an ``endpoint`` attribute, or a tuple whose first item has one."""
    head = result[0] if isinstance(result, tuple) and result else result
    return getattr(head, "endpoint", head)


def check_matcher(matcher: Matcher, cases: Sequence[Case]) -> str:
    """Raise if a sample fails to match; describe wrong endpoints, if any."""
    wrong = [c for c in cases if _endpoint_of(matcher(c.method, c.raw_path)) != c.endpoint]
    if not wrong:
        return ""
    return f"{len(wrong)}/{len(cases)} samples matched another endpoint, e.g. {wrong[0].raw_path}"


def _match_all(matcher: Matcher, pairs: Sequence[tuple[str, str]]) -> None:
    for method, raw_path in pairs:
        matcher(method, raw_path)


def prepare_matcher(
    matcher: Matcher, rules: RuleList, paths: Sequence[str], round_seconds: float
) -> Prepared:
    """Check ``matcher`` on every sample, then return (a round sampler giving
    us/match averaged over all samples, correctness note)."""
    cases = _cases(rules, paths)
    note = check_matcher(matcher, cases)
    work = partial(_match_all, matcher, [(c.method, c.raw_path) for c in cases])
    return loop_sampler(work, calibrate(work, round_seconds), len(cases), NS_PER_US), note


# ---------------------------------------------------------------------------
# HOOK for the synwsgi router. The other engineer's API:
#   router = Router(); router.add(method: str, pattern: str, endpoint: object)
#   router.match(method: str, raw_path: str) -> match object, or raises
# ``pattern`` is given in werkzeug rule syntax (``<room_id>``) and
# ``raw_path`` percent-encoded, exactly as it arrives in RAW_URI.
# The endpoint registered for rules[i] is the int i; the check accepts an
# ``(endpoint, params)`` tuple or a result whose ``.endpoint`` (or first
# item's ``.endpoint``) is i.
# ---------------------------------------------------------------------------
def synwsgi_router_match_bench(
    rules: RuleList, paths: Sequence[str], round_seconds: float = 0.05
) -> Prepared:
    """(round sampler -> us/match, note) for ``synwsgi._internal.routing.Router``;
    ``paths[i]`` is the raw sample path of ``rules[i]``. Raises
    :class:`Unavailable` (shown as "unavailable") until the router exists."""
    router = import_attr("synwsgi._internal.routing", "Router")()
    for index, (method, rule) in enumerate(rules):
        router.add(method, rule, index)
    return prepare_matcher(router.match, rules, paths, round_seconds)


# ---------------------------------------------------------------------------

RULES: list[tuple[str, str]] = [(r.method, r.rule) for r in ROUTES]
PATHS: list[str] = [r.sample_path for r in ROUTES]
BUILDERS: dict[str, Callable[[RuleList], Matcher]] = {
    WERKZEUG: werkzeug_matcher,
    SYNAPSE_SCAN: synapse_scan_matcher,
}


def _prepare(name: str, round_seconds: float) -> Prepared:
    if name == SYNWSGI:
        return synwsgi_router_match_bench(RULES, PATHS, round_seconds)
    return prepare_matcher(BUILDERS[name](RULES), RULES, PATHS, round_seconds)


def run_routing(rounds: int, round_seconds: float, budget_s: float) -> Group:
    group = Group(
        "routing",
        f"Route match over {len(RULES)} Synapse-like routes",
        "us/match",
        baseline=WERKZEUG,
        targets={SYNWSGI: TARGET},
        note="mean over one sample path per route; raw path in, decoded params out",
    )
    prepare = partial(_prepare, round_seconds=round_seconds)
    return measure_group(group, MATCHERS, prepare, rounds, budget_s)
