import os
import sys
from pathlib import Path
from typing import Any

from setuptools import find_packages, setup

GUNICORN = "gunicorn>=23"
DOCS = ["sphinx>=7"]
GEVENT = ["gunicorn[gevent]>=23", "gevent>=24.2"]
# parse_and_validate_json_object_from_request / validate_json_object (pydantic v2 models)
PYDANTIC = ["pydantic>=2"]
# psycopg: the notifier's PostgreSQL relay and examples/homeserver on PostgreSQL
# (3.2: Connection.notifies(timeout=); gevent-cooperative since 3.1.14).
# bcrypt: examples/homeserver's password hashes, as Synapse stores them (a deliberately
# slow hash with its salt and cost inside; a compiled wheel that releases the GIL while
# hashing, so the example runs it in a thread pool off the gevent hub)
HOMESERVER = ["psycopg[binary]>=3.2", "bcrypt>=4.1"]
# synwsgi.contrib.twisted: a reactor in a thread of the worker, for code that awaits
# Deferreds (Synapse's servlets); only this extra depends on Twisted.
TWISTED = ["Twisted>=23.8"]
# tests/synapse_bridge serve Synapse's own servlets (AGPL-3.0, a test dependency only,
# never imported by synwsgi) through the bridge; pinned so that CI tests one known
# release (a wheel: ~10 s to install from the index, no compiler).
SYNAPSE_BRIDGE_TEST = [*TWISTED, "matrix-synapse==1.163.2"]
TEST = [
    *GEVENT,
    *PYDANTIC,
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "opentelemetry-api>=1.25",
    "opentelemetry-sdk>=1.25",
    "mypy>=1.10",
    "ruff>=0.6",
    "types-setuptools",
    "selenium>=4.20,<5",
    # packaging and docs, checked by tests/deploy
    *DOCS,
    "build>=1.0",
    "twine>=5",
    "wheel",
    # examples/homeserver, driven by two real Matrix client libraries
    *HOMESERVER,
    "matrix-nio>=0.24",
    "mautrix>=0.20",
    *SYNAPSE_BRIDGE_TEST,
]
BENCH = [*GEVENT, "falcon>=4", "bottle>=0.13", "flask>=3", "matplotlib>=3.8"]

# The opt-in compiled build (README "Optional compiled build"): with SYNWSGI_MYPYC=1
# these modules are compiled by mypyc (mypy must be importable at build time, hence
# `--no-build-isolation`). Chosen by measurement (instructions per request on the
# state route and the 404) and by safety: a compiled class cannot be subclassed
# from Python code, so the modules whose classes users subclass stay pure
# (request, resources, servlet, errors, auth, _internal.compat and observability),
# and so do those that subclass built-in exceptions (errors, cancellation).
# Without the variable the package is pure Python: no compiler, no mypy.
MYPYC_MODULES = [
    "body",
    "_internal.connection",
    "_internal.errormap",
    "_internal.headers",
    "_internal.paths",
    "_internal.results",
    "_internal.routing",
    "_internal.runtime",
    "jsonenc",
    "policy",
    "responses",
    "site",
]


def _ext_modules() -> list[Any]:  # setuptools or distutils Extension objects
    if os.environ.get("SYNWSGI_MYPYC", "") != "1":
        return []
    # pip asks for the metadata first (`setup.py dist_info`), which needs no
    # extension: skip the type check and C generation there (they take as long
    # as the build itself).
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if commands[:1] in (["dist_info"], ["egg_info"]):
        return []
    from mypyc.build import mypycify

    # mypy type-checks every module the compiled ones import, including those
    # that use the optional extras (pydantic, psycopg): when an extra is not
    # installed, its imports become Any instead of failing the build. The
    # strictness that matters is enforced by `mypy` in the test suite; these
    # flags only relax its reports, not the types the code is compiled with.
    relaxed = [
        "--ignore-missing-imports",
        "--no-warn-return-any",
        "--allow-subclassing-any",
        "--allow-untyped-decorators",
        "--no-warn-unused-ignores",
    ]
    return mypycify(
        [*relaxed, *(f"synwsgi/{name.replace('.', '/')}.py" for name in MYPYC_MODULES)], opt_level="3"
    )


setup(
    name="synwsgi",
    version="0.1.0",
    description="Matrix Synapse's HTTP layer as a synchronous WSGI toolkit for JSON APIs",
    long_description=Path(__file__).with_name("README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["synwsgi", "synwsgi.*"]),
    package_data={"synwsgi": ["py.typed", "webroot/*"]},
    ext_modules=_ext_modules(),
    install_requires=[
        "werkzeug>=3.1,<4",
        "jinja2>=3.1",
        "canonicaljson>=2.0",
        # orjson's float formatting matches Python's for large exponents from 3.10 on;
        # tests pin the byte-for-byte equality with canonicaljson.
        "orjson>=3.10",
        "prometheus-client>=0.20",
    ],
    extras_require={
        "gunicorn": [GUNICORN],
        "gevent": GEVENT,
        "opentelemetry": ["opentelemetry-api>=1.25"],
        "pydantic": PYDANTIC,
        "homeserver": [*GEVENT, *HOMESERVER],
        "twisted": TWISTED,
        "synapse-bridge-test": SYNAPSE_BRIDGE_TEST,
        "test": TEST,
        "bench": BENCH,
        "docs": DOCS,
        "all": sorted(set(TEST + BENCH)),
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: WSGI",
        "Typing :: Typed",
    ],
)
