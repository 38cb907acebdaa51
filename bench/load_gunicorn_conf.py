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
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

COMPILED_ENV = "SYNWSGI_BENCH_COMPILED"
EXTENSION_SUFFIXES = (".so", ".pyd")


def post_fork(server: Any, worker: Any) -> None:
    compiled = os.environ.get(COMPILED_ENV)
    if compiled:
        sys.path.insert(0, compiled)


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
