"""What the README and the docs claim, checked against the code.

Each test names the claim it holds to. A claim that only a benchmark run can
check (a timing) is tied to the table it comes from instead, so the prose
cannot drift from the measured numbers.
"""

from __future__ import annotations

import ast
import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

import synwsgi
from synwsgi import (
    JsonResource,
    RestServlet,
    ServerConfig,
    Site,
    parse_json_object_from_request,
    parse_string,
)
from synwsgi.observability.accesslog import AccessLogger
from tests.integration.servers import PROJECT_ROOT, dev_server, gunicorn_server, http_get

README = PROJECT_ROOT / "README.rst"
DOCS = PROJECT_ROOT / "docs"

sys.path.insert(0, str(DOCS))
import _configref  # noqa: E402 - docs/ is not a package


def _page(name: str) -> str:
    return (DOCS / f"{name}.rst").read_text(encoding="utf-8")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# -- the README ------------------------------------------------------------------------


def _hello_world() -> str:
    """The code block under the README's "Hello world" heading."""
    section = README.read_text().split("\nHello world\n-----------\n", 1)[1]
    block = section.split(".. code-block:: python\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip("\n") + "\n"


def test_readme_is_at_most_250_lines() -> None:
    assert len(README.read_text().splitlines()) <= 250


def test_readme_hello_world_runs_as_shown(tmp_path: Path) -> None:
    code = _hello_world()
    assert len(code.splitlines()) <= 15, code
    (tmp_path / "hello.py").write_text(code)
    expected = re.search(r"# (\{.*\})$", code, re.MULTILINE)
    assert expected, "the hello world says what it prints"
    result = subprocess.run(
        [sys.executable, "hello.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected[1]


def test_readme_hello_world_serves_under_gunicorn(tmp_path: Path) -> None:
    """``gunicorn hello:app``, as the README says (gunicorn's defaults, no config file)."""
    (tmp_path / "hello.py").write_text(_hello_world())
    with gunicorn_server("hello:app", "sync", cwd=tmp_path, ready_path="/hello/x") as server:
        status, _, body = http_get(server, "/hello/w%2Fo")
    assert (status, body) == (200, b'{"hello":"w/o"}')


def _summary_numbers() -> list[str]:
    section = README.read_text().split("\nPerformance\n-----------\n", 1)[1].split("\n\n.. image::", 1)[0]
    table = section.split("\n=====", 1)[1]
    return re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w.])", table.split("\n", 4)[4]) + re.findall(
        r"(\d+(?:\.\d+)?) ms", section
    )


def test_readme_summary_numbers_come_from_the_benchmarks_page() -> None:
    full = _page("benchmarks")
    numbers = _summary_numbers()
    assert len(numbers) >= 20, numbers
    missing = [n for n in numbers if not re.search(rf"(?<![\d,.]){re.escape(n)}(?![\d,])", full)]
    assert not missing, f"README numbers not in docs/benchmarks.rst's table: {missing}"


def _canonical_json_speedup() -> int:
    full = _page("benchmarks")
    reference = float(re.search(r"^    canonicaljson +([\d.]+) ", full, re.MULTILINE)[1])  # type: ignore[index]
    ours = float(re.search(r"^    synwsgi +([\d.]+) .*canonicaljson", full, re.MULTILINE)[1])  # type: ignore[index]
    return round(reference / ours)


@pytest.mark.parametrize("path", [README, DOCS / "overview.rst"], ids=["README", "overview"])
def test_claim_9_canonical_json_speedup_is_the_measured_one(path: Path) -> None:
    claims = re.findall(r"about (\d+) times faster", _one_line(path.read_text()))
    assert claims, "no speed-up claimed"
    assert {int(c) for c in claims} == {_canonical_json_speedup()}


def test_claim_11_jinja2_is_not_imported_at_run_time() -> None:
    """The README says synwsgi does not call Jinja2 itself: importing every module loads no jinja2."""
    code = (
        "import importlib, pkgutil, sys, synwsgi\n"
        "for info in pkgutil.iter_modules(synwsgi.__path__):\n"
        "    if info.name not in ('tracing',):\n"
        "        importlib.import_module('synwsgi.' + info.name)\n"
        "print('jinja2' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
    jinja_line = _one_line(README.read_text().split("**Jinja2**", 1)[1].split("\n- ", 1)[0])
    assert "not called by synwsgi" in jinja_line


# -- the doctests --------------------------------------------------------------------------


def test_doctest_global_setup_is_empty_or_gone() -> None:
    """Every snippet imports what it uses, visibly: nothing hides in conf.py."""
    tree = ast.parse((DOCS / "conf.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "doctest_global_setup":
                    assert isinstance(node.value, ast.Constant) and not str(node.value.value).strip()


# -- the errors a client gets (security.rst, README) ----------------------------------------


class _Echo(RestServlet):
    PATTERNS = ["/echo/<word>"]

    def on_GET(self, request: synwsgi.SynapseRequest, word: str) -> tuple[int, object]:
        return 200, {"word": word, "q": parse_string(request, "q")}

    def on_POST(self, request: synwsgi.SynapseRequest, word: str) -> tuple[int, object]:
        return 200, parse_json_object_from_request(request)


@pytest.fixture(scope="module")
def client() -> Client:
    resource = JsonResource()
    _Echo().register(resource)
    return Client(Site({"/echo": resource}))


def _security_row(words: str) -> str:
    """The row of security.rst's table whose left column mentions `words`."""
    table = _page("security").split("Bad input is a 4xx", 1)[1].split(".. testcode::", 1)[0]
    rows = table.split("\n   * - ")[1:]
    return next(_one_line(row) for row in rows if words in _one_line(row.split("\n     - ")[0]))


def test_claim_1_nesting_over_128_levels_is_bad_json(client: Client) -> None:
    response = client.post("/echo/x", data="[" * 129 + "]" * 129)
    assert (response.status_code, response.get_json()["errcode"]) == (400, "M_BAD_JSON")
    assert client.post("/echo/x", data='{"a":' + "[" * 127 + "]" * 127 + "}").status_code == 200
    assert "M_BAD_JSON" in _security_row("deeper than 128 levels")
    assert "M_NOT_JSON" not in _security_row("deeper than 128 levels")


def test_claim_2_path_non_utf8_is_invalid_param(client: Client) -> None:
    response = client.get("/echo/%FF")
    assert (response.status_code, response.get_json()["errcode"]) == (400, "M_INVALID_PARAM")
    assert "M_INVALID_PARAM" in _security_row("non-UTF-8")


def test_claim_2_query_not_ascii_is_synapses_m_unknown(client: Client) -> None:
    """Synapse's `_parse_string_value` answers a value its encoding refuses with 400 and no errcode."""
    response = client.get("/echo/x?q=%FF")
    assert response.status_code == 400
    assert response.get_json() == {"errcode": "M_UNKNOWN", "error": "Query parameter 'q' must be ascii"}
    row = _security_row("parse_string")
    assert "M_UNKNOWN" in row and "must be ascii" in row


def test_claim_2_a_percent_that_is_no_escape_passes_through(client: Client) -> None:
    assert client.get("/echo/%ZZ?q=%ZZ").get_json() == {"q": "%ZZ", "word": "%ZZ"}
    assert "(``%ZZ``) is not an error" in _one_line(_page("security"))
    readme = _one_line(README.read_text())
    assert "M_INVALID_PARAM" not in readme or "query" not in readme.split("M_INVALID_PARAM")[0][-200:]


def test_claim_3_auth_and_ratelimiter_are_exported_and_documented() -> None:
    assert {"Auth", "Ratelimiter"} <= set(synwsgi.__all__)
    page = _one_line(_page("security"))
    assert "``synwsgi.Auth``" in page and "``synwsgi.Ratelimiter``" in page
    assert "bring your own limiter" not in page.lower()
    assert "not the checks" not in page


# -- logs and config (observability.rst, config.py) -------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[_ListHandler]:
    handler = _ListHandler()
    root = logging.getLogger("synwsgi")
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


class _Crash(RestServlet):
    PATTERNS = ["/crash"]

    def on_GET(self, request: synwsgi.SynapseRequest) -> tuple[int, object]:
        raise RuntimeError("on purpose")


def test_claim_6_the_error_line_logger_is_synwsgi_errors(captured: _ListHandler) -> None:
    resource = JsonResource()
    _Crash().register(resource)
    assert Client(Site({"/crash": resource})).get("/crash").status_code == 500
    errors = [r for r in captured.records if r.levelno == logging.ERROR]
    assert [r.name for r in errors] == ["synwsgi.errors"]
    for text in (_page("observability"), _page("errors"), README.read_text()):
        assert "synwsgi.responses -" not in text
    assert "synwsgi.errors" in _page("observability")


def test_claim_7_site_tag_names_the_listener_in_logs_and_metrics(captured: _ListHandler) -> None:
    from prometheus_client import CollectorRegistry

    from synwsgi import ServerMetrics

    resource = JsonResource()
    _Echo().register(resource)
    registry = CollectorRegistry()
    hooks = [AccessLogger(), ServerMetrics(registry)]
    app = Site({"/echo": resource}, ServerConfig(site_tag="federation"), hooks=hooks)
    Client(app).get("/echo/x").close()
    lines = [r.getMessage() for r in captured.records if r.name == "synwsgi.access"]
    assert len(lines) == 1 and " - federation - " in lines[0], lines
    tags = {
        sample.labels.get("tag")
        for family in registry.collect()
        for sample in family.samples
        if "tag" in sample.labels
    }
    assert tags == {"federation"}, tags
    doc = _configref.field_descriptions(ServerConfig)["site_tag"]
    assert "access line" in doc and "metrics" in doc


def test_claim_13_errors_docstring_names_the_module_that_renders() -> None:
    import synwsgi._internal.errormap
    import synwsgi.errors

    assert "synwsgi._internal.errormap" in (synwsgi.errors.__doc__ or "")
    assert "error_dict" in Path(synwsgi._internal.errormap.__file__).read_text()


def test_claim_12_changelog_says_exported_only_of_exported_names() -> None:
    changelog = _one_line((PROJECT_ROOT / "CHANGELOG.rst").read_text())
    for sentence in re.split(r"(?<=\.) ", changelog):
        if re.search(r"\bexported from ``synwsgi``", sentence) and "not exported" not in sentence:
            for name in re.findall(r"``([A-Z]\w+)``", sentence):
                assert name in synwsgi.__all__, (name, sentence)
    for name in ("InvalidPathParameter", "MethodNotAllowedError"):
        assert name not in synwsgi.__all__
        assert hasattr(synwsgi.errors, name)


def test_changelog_has_breaking_changes_for_every_release() -> None:
    text = (PROJECT_ROOT / "CHANGELOG.rst").read_text()
    releases = re.split(r"^(\S[^\n]*)\n-{3,}\n", text, flags=re.MULTILINE)[1:]
    assert len(releases) >= 4, "no release sections"
    for title, body in zip(releases[::2], releases[1::2], strict=True):
        assert re.search(r"^Breaking changes\n~{3,}\n", body, re.MULTILINE), f"{title}: no 'Breaking changes'"


# -- the configuration reference (configuration.rst, quickstart.rst) ---------------------------


def test_every_serverconfig_field_is_described() -> None:
    import dataclasses

    described = _configref.field_descriptions(ServerConfig)
    missing = [f.name for f in dataclasses.fields(ServerConfig) if f.name not in described]
    assert not missing, f"ServerConfig's docstring does not describe {missing}"


def test_every_environment_variable_is_described() -> None:
    names = {var.name for var in _configref.environment_variables()}
    for expected in ("SYNWSGI_WORKER_CONNECTIONS", "SYNWSGI_TIMEOUT", "SYNWSGI_GRACEFUL_TIMEOUT"):
        assert expected in names
    missing = sorted(names - set(_configref.ENV_DESCRIPTIONS))
    assert not missing, f"add these to docs/_configref.py's ENV_DESCRIPTIONS: {missing}"
    stale = sorted(set(_configref.ENV_DESCRIPTIONS) - names)
    assert not stale, f"described but read nowhere: {stale}"


def test_claim_8_quickstart_lists_the_gunicorn_variables_and_who_reads_behind_proxy() -> None:
    page = _page("quickstart")
    by_file = {var.name: var.file for var in _configref.environment_variables()}
    gunicorn_vars = {name for name, file in by_file.items() if file == "gunicorn.conf.py"}
    missing = [name for name in gunicorn_vars if name.startswith("SYNWSGI_") and f"``{name}``" not in page]
    assert not missing, missing
    assert by_file["SYNWSGI_BEHIND_PROXY"] == "wsgi.py"
    assert '"SYNWSGI_BEHIND_PROXY"' not in (PROJECT_ROOT / "gunicorn.conf.py").read_text()
    assert "read by the showcase app itself (``wsgi.py``), not by gunicorn" in _one_line(page)


# -- deployment.rst -----------------------------------------------------------------------------


def test_claim_10_deployment_does_not_say_the_app_refuses_metrics() -> None:
    page = _one_line(_page("deployment"))
    assert "The site refuses ``/metrics``" not in page
    section = page.split("``/metrics`` is not public", 1)[1][:2000]
    assert "its own listener" in section.lower() and "deny all" in section


# -- the dev server prints access lines (observability.rst, "Logging with the dev server") -----


DEV_APP = """\
from synwsgi import JsonResource, RestServlet, Site
from synwsgi.observability.accesslog import AccessLogger


class Versions(RestServlet):
    PATTERNS = ["/v"]

    def on_GET(self, request):
        return 200, {}


resource = JsonResource()
Versions().register(resource)
app = Site({"/v": resource}, hooks=[AccessLogger()])
"""


def test_dev_server_without_logging_config_prints_access_lines() -> None:
    with tempfile.TemporaryDirectory(prefix="synwsgi-devlog-") as tmp:
        (Path(tmp) / "devapp.py").write_text(DEV_APP)
        with dev_server("devapp:app", cwd=tmp, ready_path="/v") as server:
            mark = server.log_mark()
            assert http_get(server, "/v?access_token=secret")[0] == 200
            line = server.wait_for_log("access_token=<redacted>", since=mark, timeout=5)
    assert "access_token=<redacted>" in line, line
    assert re.search(r"synwsgi\.access - \d+ - INFO - GET-\S+ - 127\.0\.0\.1 - synwsgi - ", line), line


# -- docs/testing.rst: the example it shows passes ------------------------------------------------


def test_the_testing_example_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "examples/testing"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout[-2000:]


# -- defaults quoted in the docs ---------------------------------------------------------------

_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "KiB": 1024.0, "KiB/s": 1024.0, "MiB": 1024.0**2}
_QUOTED_DEFAULT = re.compile(r"``(\w+)``,? \(?(\d[\d ,.]*\d|\d)\s*(MiB|KiB/s|KiB|ms|s)?\b[),;]")


def _known_defaults() -> dict[str, float]:
    import dataclasses

    known: dict[str, float] = {
        f.name: float(f.default)
        for f in dataclasses.fields(ServerConfig)
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
    }
    for var in _configref.environment_variables():
        if var.default is not None and re.fullmatch(r"\d+(\.\d+)?", var.default):
            known[var.name] = float(var.default)
            if var.setting:
                known[var.setting] = float(var.default)
    known.update({name: float(value) for name, value in _configref.gunicorn_constants() if value.isdigit()})
    return known


def test_defaults_quoted_in_the_docs_are_the_code_defaults() -> None:
    """``max_request_body_size`` (50 MiB), ``worker_connections`` (1 000), ...: each is checked."""
    known = _known_defaults()
    checked, wrong = 0, []
    for page in sorted(DOCS.glob("*.rst")):
        for match in _QUOTED_DEFAULT.finditer(_one_line(page.read_text())):
            name, number, unit = match[1], match[2], match[3]
            if name not in known or (unit is None and " " not in number and float(number) >= 100):
                continue  # not a setting, or a status code: ``max_request_body_size`` (413)
            value = float(number.replace(" ", "").replace(",", "")) * _UNITS[unit]
            checked += 1
            if abs(value - known[name]) > 1e-9:
                wrong.append(f"{page.name}: {match[0]!r} but the default is {known[name]}")
    assert not wrong, wrong
    assert checked >= 10, checked
