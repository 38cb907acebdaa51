"""The configuration reference, generated from the code it describes.

`docs/configuration.rst` holds a placeholder that `conf.py` replaces with
`configuration_reference()`, so the page cannot drift from the code:

- `ServerConfig`'s fields, their defaults (read from the dataclass) and their
  descriptions (read from its docstring's ``Attributes:`` section);
- the environment variables that the repository's ``gunicorn.conf.py`` and
  ``wsgi.py`` read, with the defaults written in those files and the gunicorn
  setting each one sets (read from the files' syntax tree), described by
  `ENV_DESCRIPTIONS` below: a variable the files read without a description
  is shown as undescribed, and ``tests/deploy/test_doc_claims.py`` fails on it;
- the fixed settings of ``gunicorn.conf.py`` (module-level constants).

`homeserver_environment()` does the same for ``docs/homeserver.rst``: the
bullet list of environment variables in ``examples/homeserver/app.py``'s
docstring, read without importing the module (importing it builds the app).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_FILES = ("gunicorn.conf.py", "wsgi.py")

#: What each environment variable of the showcase's files is for. Defaults and
#: the gunicorn setting come from the files themselves.
ENV_DESCRIPTIONS: dict[str, str] = {
    "SYNWSGI_BIND": "The address gunicorn listens on. Keep it on 127.0.0.1 behind nginx.",
    "SYNWSGI_WORKERS": "Worker processes; one per core is a good start.",
    "SYNWSGI_WORKER_CLASS": "gunicorn's worker class: ``synwsgi.pywsgi_worker.PyWSGIWorker`` "
    "(gevent through ``gevent.pywsgi``; needs the ``gevent`` extra), ``gevent``, ``gthread`` or "
    "``sync`` (see the workers page).",
    "SYNWSGI_METRICS_BIND": "``host:port`` of the Prometheus metrics listener, apart from the "
    "public port (served by gunicorn's arbiter over all workers' metrics); empty turns it off. "
    "Keep it on 127.0.0.1 (see the deployment page).",
    "SYNWSGI_WORKER_CONNECTIONS": "Connections one gevent worker holds at once, parked long-polls "
    "included; a full worker makes new requests wait.",
    "SYNWSGI_THREADS": "Threads per ``gthread`` worker.",
    "SYNWSGI_TIMEOUT": "Seconds after which gunicorn restarts a worker that stopped responding "
    "(a sync worker: whose request takes longer).",
    "SYNWSGI_GRACEFUL_TIMEOUT": "Seconds workers get to finish their requests on stop or reload "
    "before they are killed.",
    "SYNWSGI_LOG_LEVEL": "The level of synwsgi's logging setup (``logging_config()``); ``debug`` "
    "also shows OPTIONS requests in the access log.",
    "SYNWSGI_BEHIND_PROXY": "``1``: the showcase builds its ``ServerConfig`` with "
    "``behind_proxy=True`` (trust ``X-Forwarded-For``/``-Proto`` from one proxy). Read by ``wsgi.py``, "
    "not by gunicorn: your own app passes ``ServerConfig(behind_proxy=...)`` itself.",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus-client's multiprocess directory, shared by all workers. "
    "It must exist (it is never wiped); unset, ``gunicorn.conf.py`` makes a temporary one and "
    "removes it at exit.",
}

UNDESCRIBED = "(not described yet)"


@dataclasses.dataclass
class EnvVar:
    name: str
    file: str
    default: str | None
    setting: str | None


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool)):
        return str(node.value)
    return None


def _env_reads(node: ast.AST) -> Iterator[tuple[str, str | None]]:
    """(name, default) of each ``os.environ.get(name[, default])``/``os.environ[name]`` under `node`."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr in ("get", "setdefault")
            and ast.unparse(sub.func.value) == "os.environ"
            and sub.args
            and (name := _literal(sub.args[0]))
        ):
            yield name, _literal(sub.args[1]) if len(sub.args) > 1 else None
        elif (
            isinstance(sub, ast.Subscript)
            and ast.unparse(sub.value) == "os.environ"
            and (name := _literal(sub.slice))
        ):
            yield name, None


def environment_variables() -> list[EnvVar]:
    """Every environment variable the showcase's config files read, in file order, once each."""
    found: dict[str, EnvVar] = {}
    for file in ENV_FILES:
        tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
        settings: dict[int, str] = {}
        for stmt in tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                target = stmt.targets[0].id
                if not target.startswith("_"):
                    for sub in ast.walk(stmt.value):
                        settings[id(sub)] = target
        for node in ast.walk(tree):
            for name, default in _env_reads(node):
                if node is not tree and isinstance(node, ast.Call) and name not in found:
                    found[name] = EnvVar(name, file, default, settings.get(id(node)))
    return sorted(found.values(), key=lambda var: (var.file != "gunicorn.conf.py", var.name))


def gunicorn_constants() -> list[tuple[str, str]]:
    """``gunicorn.conf.py``'s settings that are plain constants (no environment variable)."""
    tree = ast.parse((ROOT / "gunicorn.conf.py").read_text(encoding="utf-8"))
    constants = []
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and not stmt.targets[0].id.startswith("_")
            and isinstance(stmt.value, ast.Constant)
        ):
            constants.append((stmt.targets[0].id, repr(stmt.value.value)))
    return constants


def field_descriptions(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of `cls`'s docstring: field name -> text (``a, b: ...`` gives both)."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    described: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        match = re.match(r"^    ([\w, ]+): (.*)$", line)
        if match:
            names = [name.strip() for name in match[1].split(",")]
            for name in names:
                described[name] = match[2].strip()
        elif line.startswith("        ") and names:
            for name in names:
                described[name] += " " + line.strip()
        elif line.strip():
            names = []
    return described


def _default(field: dataclasses.Field[object]) -> str:
    value = field.default
    text = f"``{value!r}``"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1024 and value % 1024 == 0:
        size, unit = (value // 1024**2, "MiB") if value % 1024**2 == 0 else (value // 1024, "KiB")
        text += f" ({size} {unit})"
    return text


def _rst_docstring(text: str) -> str:
    """Docstring markup (`name`, Markdown-style) as reStructuredText literals."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = " ".join(["20"] * (len(header) - 1) + ["60"])
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in (header, *rows):
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return [*lines, ""]


def configuration_reference() -> str:
    from synwsgi import ServerConfig

    described = field_descriptions(ServerConfig)
    fields = [
        (f"``{field.name}``", _default(field), _rst_docstring(described.get(field.name, UNDESCRIBED)))
        for field in dataclasses.fields(ServerConfig)
    ]
    env = [
        (
            f"``{var.name}``",
            f"``{var.default}``" if var.default is not None else "unset",
            f"``{var.setting}``" if var.setting else f"(``{var.file}``)",
            ENV_DESCRIPTIONS.get(var.name, UNDESCRIBED),
        )
        for var in environment_variables()
    ]
    constants = [(f"``{name}``", f"``{value}``") for name, value in gunicorn_constants()]
    lines = [
        "``ServerConfig`` fields",
        "-----------------------",
        "",
        "Pass them to the :class:`synwsgi.Site` (or to a resource, for that mount only):",
        "``Site(resources, ServerConfig(max_request_body_size=1024 * 1024))``.",
        "",
        *_table(fields, ("Field", "Default", "What it does")),
        "Environment variables of the showcase",
        "-------------------------------------",
        "",
        "Read by the repository's ``gunicorn.conf.py`` (gunicorn settings) and ``wsgi.py`` (the app).",
        "They are not read by the library: an app of your own reads what it wants.",
        "",
        *_table(env, ("Variable", "Default", "Sets", "What it does")),
        "Fixed settings of ``gunicorn.conf.py``",
        "--------------------------------------",
        "",
        "Edit the file to change them (or pass gunicorn's command-line option, which wins):",
        "",
        *_table(constants, ("Setting", "Value")),
    ]
    return "\n".join(lines)


HOMESERVER_APP = ROOT / "examples" / "homeserver" / "app.py"


def homeserver_environment() -> str:
    """The ``* ``NAME``: ...`` bullets of the example homeserver's module docstring."""
    doc = ast.get_docstring(ast.parse(HOMESERVER_APP.read_text(encoding="utf-8"))) or ""
    bullets: list[str] = []
    for line in doc.splitlines():
        if line.startswith("* ``"):
            bullets.append(line)
        elif bullets and line.startswith("  ") and line.strip():
            bullets[-1] += " " + line.strip()
        elif bullets and not line.strip() and not bullets[-1].endswith("\n"):
            bullets[-1] += "\n"
    items = [bullet.rstrip("\n") for bullet in bullets if "``SYNWSGI_" in bullet.split(":", 1)[0]]
    if not items:
        raise RuntimeError(f"{HOMESERVER_APP} documents no SYNWSGI_* variable in its docstring")
    return "\n".join(items) + "\n"
