"""gunicorn settings for the showcase app: `gunicorn wsgi:app` reads this file.

Each setting can be changed with an environment variable (SYNWSGI_*), or on
the command line, which wins over this file.
"""

import gc
import os
import shutil
import tempfile
from typing import Any

# Prometheus' multiprocess mode must be chosen before any worker imports
# prometheus_client: every worker writes its samples to this directory and
# /metrics adds them up. A directory the user names must exist (it is theirs:
# never wiped); without one, a fresh temporary directory is made here and
# removed at exit.
_metrics_dir_is_ours = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir_is_ours:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="synwsgi-prometheus-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
if not os.path.isdir(_metrics_dir):
    raise SystemExit(
        f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir!r} is not a directory: create it (empty) or unset it"
        " so that gunicorn.conf.py makes a temporary one"
    )

from gunicorn.glogging import Logger as GunicornLogger  # noqa: E402

from synwsgi.observability.logcontext import logging_config  # noqa: E402 - after the environment is set

bind = [os.environ.get("SYNWSGI_BIND", "127.0.0.1:8008")]
workers = int(os.environ.get("SYNWSGI_WORKERS", "2"))
# gevent through gevent.pywsgi (synwsgi's fixes to gunicorn's `gevent_pywsgi`
# worker): thousands of connections per worker, cancellation by killing the
# handler's greenlet, ~1.3x the requests per CPU-second of gunicorn's `gevent`
# worker (which stays supported: SYNWSGI_WORKER_CLASS=gevent). Use "gthread"
# (threads below) or "sync" without gevent.
worker_class = os.environ.get("SYNWSGI_WORKER_CLASS", "synwsgi.pywsgi_worker.PyWSGIWorker")
worker_connections = int(os.environ.get("SYNWSGI_WORKER_CONNECTIONS", "1000"))
threads = int(os.environ.get("SYNWSGI_THREADS", "8"))

# gunicorn 23+ opens a control socket by default; nothing here uses it.
control_socket_disable = True

timeout = int(os.environ.get("SYNWSGI_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("SYNWSGI_GRACEFUL_TIMEOUT", "30"))
keepalive = 5

# Oversized request lines and headers are refused by gunicorn itself (400/431).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# synwsgi writes the access line itself ("Processed request", secrets redacted);
# gunicorn's own access log would repeat it, with tokens in the URI.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("SYNWSGI_LOG_LEVEL", "info")
logconfig_dict = logging_config(loglevel.upper())


class NoAccessLineLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger without its access line.

    With `logconfig_dict` set, gunicorn formats its access fields for every
    request even when `accesslog` is None (about a tenth of a gevent worker's
    CPU when it wakes thousands of long-polls); synwsgi writes the line itself.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


logger_class = NoAccessLineLogger


def post_worker_init(worker: Any) -> None:
    """Once the worker has loaded the app, keep the objects that live as long as it
    out of the garbage collector's walks (`gc.freeze`): full collections over them
    paused a busy worker for 40-65 ms, which every request it served then waited out."""
    gc.collect()
    gc.freeze()


# /metrics is not served on the public port: the arbiter serves every worker's
# numbers on a listener of its own (as Synapse serves metrics on their own
# listener), 127.0.0.1:9101 by default; SYNWSGI_METRICS_BIND=host:port moves
# it (port 0: any free port, logged), an empty value turns it off.
metrics_bind = os.environ.get("SYNWSGI_METRICS_BIND", "127.0.0.1:9101")


def when_ready(server: Any) -> None:
    if metrics_bind:
        from synwsgi.observability.metrics import start_metrics_server

        host, port = start_metrics_server(metrics_bind)
        server.log.info("Serving metrics at http://%s:%s/metrics", host, port)


def post_fork(server: Any, worker: Any) -> None:
    """A worker closes its copy of the arbiter's metrics listener and says
    which tag its request ids carry (`GET-<tag>-<n>`)."""
    from synwsgi.observability.metrics import close_inherited_metrics_servers
    from synwsgi.request import worker_tag

    close_inherited_metrics_servers()
    server.log.info("Worker %s: request ids GET-%s-<n>", worker.pid, worker_tag())


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _metrics_dir_is_ours:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
