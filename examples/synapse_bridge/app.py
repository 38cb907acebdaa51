"""The WSGI application: Synapse's client servlets on a synwsgi `Site`.

    gunicorn --config examples/synapse_bridge/gunicorn.conf.py

The reactor thread and the homeserver are made in each worker when gunicorn
imports this module (never in the master: no `preload_app`).
"""

from __future__ import annotations

import logging
import logging.config

from synwsgi import ServerConfig, Site
from synwsgi.contrib.twisted import DeferredDriver, ReactorThread, TwistedRequest
from synwsgi.observability.accesslog import AccessLogger
from synwsgi.observability.logcontext import logging_config

from .homeserver import build, default_config_path, request_starter

if not logging.getLogger().handlers:
    # Outside gunicorn (the dev server): log as the gunicorn config does.
    _config = logging_config("INFO")
    _config["loggers"] = {"synapse": {"level": "WARNING"}}
    logging.config.dictConfig(_config)

reactor_thread = ReactorThread.start()
hs, client_resource = reactor_thread.call(build, default_config_path())

app = Site(
    {"/_matrix/client": client_resource},
    config=ServerConfig(
        async_driver=DeferredDriver(reactor_thread, start=request_starter(hs), error_config=hs.config)
    ),
    hooks=[AccessLogger()],
    request_class=TwistedRequest,
)
