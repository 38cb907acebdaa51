# ruff: noqa: N999 - gunicorn reads a file of this name
"""gunicorn settings for the example homeserver (self-sufficient: nothing from ./gunicorn.conf.py).

From the repository root::

    gunicorn --config examples/homeserver/gunicorn.conf.py

serves ``examples.homeserver.app:app`` with SQLite (``homeserver.db`` in the
state directory, see ``app.py``) on ``$SYNWSGI_BIND`` (default
127.0.0.1:8008), open registration, gevent workers; and its metrics
(``/_synapse/metrics``) on a listener of their own,
``$SYNWSGI_HS_METRICS_BIND`` (default 127.0.0.1:9009; empty: none), which
the app tells apart by the port a request came in on.

Sizing for long-polls: every parked ``/sync`` holds one connection of its
worker for up to its timeout, and gunicorn's gevent worker accepts no more
than ``worker_connections`` at once; when they are all parked, the send that
would wake them waits too. So ``worker_connections`` = the parked polls you
expect per worker + headroom for ordinary requests (here 10 000 + 1 000), and
the process needs as many file descriptors (the soft ``RLIMIT_NOFILE`` is
raised to its hard limit at startup).

SQLite keeps the notifier in-process, so it runs one worker (a gevent worker
serves thousands of clients). With ``SYNWSGI_HS_DATABASE`` set to a PostgreSQL
DSN, notifications cross workers and hosts through LISTEN/NOTIFY and
``SYNWSGI_WORKERS`` may be raised.
"""

from __future__ import annotations

import gc
import logging.config
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# The repository root, so that `examples.homeserver` imports from any cwd.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

wsgi_app = "examples.homeserver.app:app"
bind = [os.environ.get("SYNWSGI_BIND", "127.0.0.1:8008")]
# The app reads the same variable (and default) to know which port is the metrics one.
METRICS_BIND = os.environ.get("SYNWSGI_HS_METRICS_BIND", "127.0.0.1:9009")
# gevent through gevent.pywsgi (gunicorn's `gevent_pywsgi` worker with synwsgi's
# fixes): ~1.3x cheaper per request than gunicorn's `gevent` worker.
worker_class = os.environ.get("SYNWSGI_WORKER_CLASS", "synwsgi.pywsgi_worker.PyWSGIWorker")
workers = int(os.environ.get("SYNWSGI_WORKERS", "1"))
PARKED_POLLS = int(os.environ.get("SYNWSGI_PARKED_POLLS", "10000"))
worker_connections = PARKED_POLLS + 1000
# Long-polls are answered within /sync's own cap (120 s); gevent workers are
# not killed for it, but a sync or gthread worker would be.
timeout = 150
graceful_timeout = 10
keepalive = 75
loglevel = os.environ.get("SYNWSGI_LOG_LEVEL", "info")
# The access line is Synapse's "Processed request", written by the app's
# synwsgi.observability.accesslog.AccessLogger hook (with the requester, ~3 us a line);
# gunicorn's own would cost more than a woken /sync does.
accesslog = None
errorlog = "-"
control_socket_disable = True


def _log_to_stderr() -> None:
    """synwsgi's records (the access line included) to stderr, tagged with the request id."""
    from synwsgi.observability.logcontext import logging_config

    config = logging_config(loglevel.upper())
    config["loggers"] = {}  # gunicorn's loggers stay as gunicorn sets them
    logging.config.dictConfig(config)


_metrics_dir_is_ours = False


def on_starting(server: Any) -> None:
    """Before the listeners and the workers exist, with the final settings (the command
    line's included, which replace this file's):

    * the metrics listener is added to the client's (also when ``--bind``
      replaced ``bind`` above);
    * with several workers, prometheus' multiprocess mode, so that a scrape,
      whichever worker answers it, adds up every worker's numbers. It must be
      on before a worker imports prometheus_client (the app does, after the
      fork). A directory the user names must exist (theirs: never wiped);
      else a temporary one is made here and removed at exit;
    * then synwsgi's logging (`_log_to_stderr`): importing synwsgi imports
      prometheus_client (its top level exports `MetricsResource`), so it
      comes after the multiprocess decision, and the workers inherit it.
    """
    global _metrics_dir_is_ours
    if METRICS_BIND and METRICS_BIND not in server.cfg.bind:
        server.cfg.set("bind", [*server.cfg.bind, METRICS_BIND])
    if server.cfg.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        if "prometheus_client" in sys.modules:
            raise SystemExit("prometheus_client was imported before gunicorn.conf.py could set it up")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="synwsgi-homeserver-prometheus-")
        _metrics_dir_is_ours = True
    _log_to_stderr()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _metrics_dir_is_ours:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker: object) -> None:
    """Once the worker has loaded the app: move everything that exists now out of the GC's sight.

    A full collection walks every tracked object; the modules, the app and
    the worker's own objects live as long as the process, and walking them
    cost this worker 40-65 ms pauses every few seconds, which every parked
    request it then woke had to wait out (`gc.freeze`, as Instagram's
    servers do after forking).
    """
    gc.collect()
    gc.freeze()


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = worker_connections + 256
    target = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, wanted))
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


_raise_nofile()
