from pathlib import Path

from setuptools import find_packages, setup

GUNICORN = "gunicorn>=23"
DOCS = ["sphinx>=7"]
GEVENT = ["gunicorn[gevent]>=23", "gevent>=24.2"]
# parse_and_validate_json_object_from_request / validate_json_object (pydantic v2 models)
PYDANTIC = ["pydantic>=2"]
# the notifier's PostgreSQL relay and examples/homeserver on PostgreSQL
# (3.2: Connection.notifies(timeout=); gevent-cooperative since 3.1.14)
HOMESERVER = ["psycopg[binary]>=3.2"]
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
]
BENCH = [*GEVENT, "falcon>=4", "bottle>=0.13", "flask>=3", "matplotlib>=3.8"]

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
