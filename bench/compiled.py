"""The opt-in mypyc build of synwsgi (README "Optional compiled build"), for
benchmark rows measured beside pure Python.

A compiled and a pure synwsgi cannot live in one process (both are the package
``synwsgi``), so compiled rows are measured in a child process whose
``sys.path`` starts with a compiled tree: :func:`compiled_tree` builds the
wheel exactly as the README's opt-in install does (``SYNWSGI_MYPYC=1 pip wheel
--no-build-isolation``, from a copy of the sources) and unpacks it under
``build/mypyc-bench/<key>/``, where ``key`` hashes every file the build reads,
so an unchanged tree is reused and any edit triggers a rebuild.

:class:`ChildSamplers` runs round samplers in such a child and is driven by
the parent one round at a time, so the compiled rows take part in the
parent's rotated rounds and drift on the machine hits both builds alike.

A process of its own on the compiled build is started with ``cwd=tree`` and
``env=compiled_env(tree)``: ``python -m`` puts the working directory first on
``sys.path``, where the repository's pure ``synwsgi/`` would otherwise shadow
the compiled one. The load group's gunicorn servers (``bench/load.py``) do it
differently: ``bench/load_gunicorn_conf.py`` puts the tree first on ``sys.path``
in each worker (``post_fork``) and refuses to boot unless ``synwsgi.site`` then
comes from it. ``process_loads_compiled`` checks a running worker;
``compiled_synwsgi_files`` the current process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from bench.model import Unavailable

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "mypyc-bench"
#: besides synwsgi/, the files `pip wheel` reads to build the package
BUILD_INPUTS = ("setup.py", "pyproject.toml", "README.rst")
COMPLETE = ".complete"
KEEP_TREES = 3  # older trees are pruned (a running server may still use the previous one)

Prepared = tuple[Callable[[], float], str]  # (round sampler, note), as in bench.timing


class BuildFailed(Exception):
    """The compiled build was attempted and failed (not a missing toolchain)."""


def missing_toolchain() -> str | None:
    """Why the compiled build cannot be made with this Python, or None."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypy (with mypyc) is not installed"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler} not found)"
    header = Path(sysconfig.get_paths()["include"], "Python.h")
    if not header.exists():
        return f"no Python headers ({header} missing: install python3-dev)"
    has_bdist_wheel = importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    if not has_bdist_wheel and importlib.util.find_spec("wheel") is None:
        return "neither the wheel package nor setuptools >= 70.1 is installed"
    return None


def _source_files() -> Iterator[Path]:
    for name in BUILD_INPUTS:
        yield ROOT / name
    for path in sorted((ROOT / "synwsgi").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".so", ".pyc"):
            yield path


def source_key() -> str:
    """A hash of what the build reads and what it is built for."""
    digest = hashlib.sha256()
    mypy = importlib.util.find_spec("mypy")
    version = ""
    if mypy is not None and mypy.origin:
        version = Path(mypy.origin).with_name("version.py").read_text(encoding="utf-8")
    digest.update(f"{sys.version}\0{sysconfig.get_platform()}\0{version}\0".encode())
    for path in _source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_tree(dest: Path, timeout: float = 900) -> Path:
    """Build the compiled wheel from a copy of the sources and unpack it into
    ``dest`` (an importable tree: ``dest/synwsgi/*.so`` and the mypyc runtime
    library beside it). Raises :class:`Unavailable` without a toolchain."""
    reason = missing_toolchain()
    if reason is not None:
        raise Unavailable(f"compiled build unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="synwsgi-mypyc-") as tmp:
        src, dist = Path(tmp, "src"), Path(tmp, "dist")
        for path in _source_files():
            copy = src / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        argv = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
                "--wheel-dir", str(dist), str(src)]  # fmt: skip
        env = {**os.environ, "SYNWSGI_MYPYC": "1"}
        done = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True, timeout=timeout)
        wheels = sorted(dist.glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise BuildFailed(f"pip wheel failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(dest)
    if not list((dest / "synwsgi").glob("site.*.so")):
        raise BuildFailed(f"the wheel holds no compiled synwsgi.site: {sorted(os.listdir(dest / 'synwsgi'))}")
    return dest


def compiled_tree() -> Path:
    """The compiled tree for the current sources: reused if already built,
    else built now (a minute or two) under ``build/mypyc-bench/``."""
    key = source_key()
    tree = BUILD_DIR / key
    if (tree / COMPLETE).exists():
        return tree
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    scratch = BUILD_DIR / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        build_tree(scratch)
        (scratch / COMPLETE).write_text(key, encoding="utf-8")
        try:
            scratch.rename(tree)
        except OSError:  # another process finished the same build first
            if not (tree / COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(keep=tree)
    return tree


def _prune(keep: Path) -> None:
    trees = [p for p in BUILD_DIR.iterdir() if (p / COMPLETE).exists() and p != keep]
    trees.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in trees[KEEP_TREES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def compiled_env(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process on the compiled build: the tree first on
    ``PYTHONPATH``, then the repository (for ``bench`` and ``wsgi``). Start it
    with ``cwd=tree`` too (see the module docstring)."""
    path = os.pathsep.join(p for p in (str(tree), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


def compiled_synwsgi_files() -> dict[str, str]:
    """``{module: file}`` of the synwsgi modules this process has imported."""
    return {
        name: str(getattr(module, "__file__", ""))
        for name, module in sorted(sys.modules.items())
        if name == "synwsgi" or name.startswith("synwsgi.")
    }


def process_loads_compiled(pid: int, tree: Path) -> bool:
    """Whether process ``pid`` (e.g. a gunicorn worker, once it has served a
    request or imported the app) has the compiled ``synwsgi.site`` of ``tree``
    mapped (Linux ``/proc``)."""
    prefix = str(tree.resolve() / "synwsgi" / "site.")
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    return any(part.startswith(prefix) and part.endswith(".so") for part in maps.split())


def check_compiled(files: dict[str, str], tree: Path) -> None:
    """Raise unless the child really ran synwsgi.site compiled from ``tree``."""
    site = files.get("synwsgi.site", "")
    if not (site.endswith(".so") and Path(site).resolve().is_relative_to(tree.resolve())):
        raise BuildFailed(f"the child did not load the compiled synwsgi.site (got {site!r})")


class ChildSamplers:
    """Round samplers living in a child process, on the compiled build unless
    ``compiled`` is false (then on the repository's pure Python).

    ``target`` is ``module:function``; in the child, ``function(*args)``
    returns ``{row name: (sampler, note)}``. Each :meth:`sample` call runs one
    round there and returns its value; the parent waits idle meanwhile.
    """

    def __init__(
        self, target: str, args: Sequence[Any], env: dict[str, str] | None = None, compiled: bool = True
    ) -> None:
        tree = compiled_tree() if compiled else None
        # a file, not a pipe: a chatty child must never block on a full pipe
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.compiled", "--serve", target, json.dumps(list(args))],
            cwd=tree or ROOT, env=compiled_env(tree, env) if tree else {**os.environ, **(env or {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )  # fmt: skip
        try:
            hello = self._read()
            if "unavailable" in hello:
                raise Unavailable(hello["unavailable"])
            if tree is not None:
                check_compiled(hello["files"], tree)
        except BaseException:
            self.close()
            raise
        self.notes: dict[str, str] = hello["notes"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace")[-1500:]
            raise BuildFailed(f"compiled child exited ({self._proc.poll()}): {tail}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise BuildFailed(f"compiled child: {message['error']}")
        return message

    def sample(self, name: str) -> float:
        assert self._proc.stdin is not None
        self._proc.stdin.write(name + "\n")
        self._proc.stdin.flush()
        return float(self._read()["value"])

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):  # the child may be gone already
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()


def _serve(target: str, args: list[Any]) -> None:
    """Child side of :class:`ChildSamplers`: one JSON line per message on the
    original stdout (anything else printing goes to stderr)."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    module, function = target.split(":")
    try:
        prepared: dict[str, Prepared] = getattr(importlib.import_module(module), function)(*args)
    except Unavailable as exc:
        emit({"unavailable": str(exc)})
        return
    except Exception as exc:  # reported to the parent as an error row
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return
    emit({"notes": {name: note for name, (_, note) in prepared.items()}, "files": compiled_synwsgi_files()})
    for line in sys.stdin:
        try:
            emit({"value": prepared[line.strip()][0]()})
        except Exception as exc:
            emit({"error": f"{type(exc).__name__}: {exc}"})
            return


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2], json.loads(sys.argv[3]))
    else:  # `python -m bench.compiled`: build (or reuse) and print the tree
        print(compiled_tree())
