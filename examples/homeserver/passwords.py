"""Password hashes: bcrypt, as Synapse stores them, computed off the gevent hub.

bcrypt is slow on purpose: cost 12 (Synapse's default `bcrypt_rounds`) takes
~0.35 s of CPU here per hash, every registration and login. Run on a gevent
worker's hub, each login would freeze every other request of the worker for
that long. So the hashing runs in a small thread pool: gevent's `ThreadPool`
under gevent (the calling greenlet waits, the hub goes on serving; bcrypt
releases the GIL while it works), a `concurrent.futures` pool on threaded
servers and in-process. The pool has one thread per CPU, and its threads run
at a lower CPU priority (Linux: a per-thread nice value), so that hashes
take the spare CPU and the worker's own thread is scheduled first.

Measured with `tests/homeserver/test_passwords.py` (20 logins at cost 10 on
one gevent worker, a small request every 10 ms meanwhile), on the shared
2-core machine at a load average of 5-6: median 2.6-4.2 ms, 95th percentile
11-15 ms, worst 20-26 ms (the same probes with no logins: worst 8-13 ms).
Without the lower priority the median was 3-7 ms and the worst 25-50 ms; with
bcrypt on the hub a request waited 2 s, with the earlier PBKDF2 on the hub
378 ms.

Like Synapse, the password is hashed as UTF-8 and bcrypt sees its first 72
bytes (bcrypt ignores the rest; bcrypt 5 refuses longer input, so it is cut
here).

Earlier versions of this example stored PBKDF2-SHA256 hashes
(`pbkdf2_sha256$<iterations>$<salt>$<hex digest>`): those still verify, and a
successful login replaces them with a bcrypt hash (`needs_rehash`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import bcrypt

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _gevent_patched() -> bool:
    """Whether this process is a gevent worker; asked per call, since gunicorn's
    gevent worker patches the standard library after the app is imported.

    Once `threading` is patched, a `concurrent.futures` pool's threads are
    greenlets on the hub, so only gevent's `ThreadPool` (real threads) keeps
    a hash off it.
    """
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


DEFAULT_ROUNDS = 12
BCRYPT_MAX_BYTES = 72
# How much less CPU priority the hashing threads get than the worker's own.
HASH_THREAD_NICENESS = 10
PBKDF2_PREFIX = "pbkdf2_sha256$"


def _lower_priority() -> None:
    """Make this (pool) thread yield the CPU to the worker's thread; Linux only."""
    # Without per-thread priorities the pool still keeps the hub free.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


def _prioritised(function: Callable[..., T], *args: Any) -> T:
    _lower_priority()
    return function(*args)


class HashPool:
    """Runs a function in a pool thread and waits for it, without blocking the gevent hub.

    The pools are made on first use, in the process that uses them (gunicorn
    forks its workers after loading the app).
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = size or os.cpu_count() or 2
        self._lock = threading.Lock()
        self._pid = 0
        self._gevent_pool: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._gevent_pool, self._executor, self._pid = None, None, os.getpid()
        if _gevent_patched():
            if self._gevent_pool is None:
                from gevent.threadpool import ThreadPool

                self._gevent_pool = ThreadPool(self.size)
            result: T = self._gevent_pool.apply(_prioritised, (function, *args))
            return result
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        self.size, thread_name_prefix="password-hash", initializer=_lower_priority
                    )
        return self._executor.submit(function, *args).result()

    def close(self) -> None:
        """Let the pool's threads end (idle ones would otherwise stay for the process's life)."""
        with self._lock:
            executor, gevent_pool = self._executor, self._gevent_pool
            self._executor, self._gevent_pool = None, None
        if executor is not None:
            executor.shutdown(wait=False)
        if gevent_pool is not None:
            gevent_pool.kill()


def _bcrypt_input(password: str) -> bytes:
    return password.encode("utf-8")[:BCRYPT_MAX_BYTES]


def pbkdf2_hash(password: str, iterations: int = 20_000) -> str:
    """The earlier example's format, kept to verify (and to make such hashes in tests)."""
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{PBKDF2_PREFIX}{iterations}${salt}${digest.hex()}"


def _pbkdf2_verify(password: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


class PasswordHasher:
    """bcrypt at a configurable cost (`SYNWSGI_HS_BCRYPT_ROUNDS`), off the hub."""

    def __init__(self, rounds: int = DEFAULT_ROUNDS, pool: HashPool | None = None) -> None:
        if not 4 <= rounds <= 31:
            raise ValueError(f"bcrypt rounds must be within 4..31, not {rounds}")
        self.rounds = rounds
        self.pool = pool or HashPool()

    def hash(self, password: str) -> str:
        def compute() -> str:
            return bcrypt.hashpw(_bcrypt_input(password), bcrypt.gensalt(self.rounds)).decode("ascii")

        return self.pool.run(compute)

    def verify(self, password: str, stored: str) -> bool:
        if stored.startswith(PBKDF2_PREFIX):
            return self.pool.run(_pbkdf2_verify, password, stored)
        try:
            encoded = stored.encode("ascii")
        except UnicodeEncodeError:
            return False

        def check() -> bool:
            try:
                return bcrypt.checkpw(_bcrypt_input(password), encoded)
            except ValueError:  # not a bcrypt hash
                logger.warning("A stored password hash is neither bcrypt nor PBKDF2")
                return False

        return self.pool.run(check)

    @staticmethod
    def needs_rehash(stored: str) -> bool:
        """Whether a verified hash should be replaced by a bcrypt one (an old PBKDF2 hash)."""
        return stored.startswith(PBKDF2_PREFIX)
