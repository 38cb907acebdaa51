"""gunicorn settings for the load group's servers (``-c bench/load_gunicorn_conf.py``).

The repository's ``gunicorn.conf.py`` is not used here because it imports
synwsgi in the arbiter (for its logging configuration): every worker would
inherit the pure-Python modules, and the ``synwsgi (mypyc)`` server could
never load the compiled ones. The settings that matter for speed are the
same as there: ``gc.freeze()`` once the app is loaded, and no gunicorn access
line (no ``accesslog`` and no logging configuration, so gunicorn's logger
returns before formatting anything). The command line sets the worker class,
the number of workers, the bind address and the log level.

Environment read by the workers:

* ``SYNWSGI_BENCH_COMPILED``: a directory holding a mypyc-compiled synwsgi.
  It goes first on ``sys.path`` after the fork, before the app is imported
  (gunicorn's ``--chdir`` puts the repository first, which would shadow it),
  and the worker refuses to boot unless ``synwsgi.site`` really was loaded
  from an extension module, so that row is an ``error`` rather than a
  silent rerun of the pure-Python one.
* ``SYNWSGI_BENCH_PROFILE``: a path prefix; the worker samples its own
  stacks on CPU time and writes them to ``<prefix>.<pid>`` when it exits
  (see ``CpuSampler``).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

COMPILED_ENV = "SYNWSGI_BENCH_COMPILED"
EXTENSION_SUFFIXES = (".so", ".pyd")


def post_fork(server: Any, worker: Any) -> None:
    compiled = os.environ.get(COMPILED_ENV)
    if compiled:
        sys.path.insert(0, compiled)
        # The arbiter has imported the pure package already when the worker
        # class is synwsgi's (`synwsgi.pywsgi_worker.PyWSGIWorker`: importing
        # it runs `synwsgi/__init__`, which imports the request path). Forget
        # it here, so that the app imports the compiled build; the worker
        # class keeps its pure module, which imports nothing else of synwsgi.
        for name in [name for name in sys.modules if name == "synwsgi" or name.startswith("synwsgi.")]:
            del sys.modules[name]


def compiled_check() -> None:
    """Raise unless ``synwsgi.site`` comes from the compiled tree (a failed
    ``post_worker_init`` stops the worker's boot, and gunicorn then exits)."""
    compiled = os.environ.get(COMPILED_ENV)
    if not compiled:
        return
    import synwsgi.site

    where = getattr(synwsgi.site, "__file__", "") or ""
    if not where.endswith(EXTENSION_SUFFIXES) or not os.path.realpath(where).startswith(
        os.path.realpath(compiled)
    ):
        raise RuntimeError(f"{COMPILED_ENV}={compiled}: synwsgi.site was loaded from {where!r}")


def post_worker_init(worker: Any) -> None:
    compiled_check()
    # as in the repository's gunicorn.conf.py: keep long-lived objects out of the GC's walks
    gc.collect()
    gc.freeze()
    _start_profile()


# -- optional CPU-time profile of the worker (SYNWSGI_BENCH_PROFILE) ---------------

PROFILE_ENV = "SYNWSGI_BENCH_PROFILE"
PROFILE_INTERVAL_S = 0.0005


class CpuSampler:
    """A statistical profiler that samples on CPU time (``ITIMER_PROF``), so a
    worker that waits for the CPU while other processes run is not sampled:
    the samples split the worker's CPU time, the quantity the load rows judge.

    C code (syscalls, Cython, the interpreter's own work) is credited to the
    Python frame that called it: the leaf keeps its line number, so that a
    call into a compiled framework can be told from the caller's own code.
    Stacks are written in the collapsed format (``a;b;c count``) at exit.

    The garbage collector runs inside whatever allocation triggers it, so its
    time is spread over the stacks; it is also measured directly (thread CPU
    time between ``gc.callbacks`` start and stop) and written beside them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self.gc_cpu_s = 0.0
        self.gc_runs = 0
        self._gc_start = 0.0

    def start(self) -> None:
        import signal

        gc.callbacks.append(self._gc)
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, PROFILE_INTERVAL_S, PROFILE_INTERVAL_S)

    def _sample(self, signum: int, frame: Any) -> None:
        names = []
        leaf = True
        while frame is not None:
            code = frame.f_code
            where = f"{code.co_qualname} ({code.co_filename}" + (f":{frame.f_lineno})" if leaf else ")")
            names.append(where)
            leaf = False
            frame = frame.f_back
        key = ";".join(reversed(names))
        self.counts[key] = self.counts.get(key, 0) + 1

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.thread_time()
        else:
            self.gc_cpu_s += time.thread_time() - self._gc_start
            self.gc_runs += 1

    def dump(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(f"{self.path}.{os.getpid()}", "w") as out:
            out.writelines(f"{stack} {count}\n" for stack, count in self.counts.items())
        with open(f"{self.path}-gc.{os.getpid()}", "w") as out:
            out.write(f"{self.gc_cpu_s} {self.gc_runs}\n")


_sampler: list[CpuSampler] = []


def _start_profile() -> None:
    path = os.environ.get(PROFILE_ENV)
    if path:
        _sampler.append(CpuSampler(path))
        _sampler[0].start()


def worker_exit(server: Any, worker: Any) -> None:
    if _sampler:
        _sampler[0].dump()
