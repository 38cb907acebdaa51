"""Storage: the same SQL on SQLite (the default) and PostgreSQL (given a DSN).

`Database` hides the two drivers behind one `transaction()`; `Store` holds
every query the homeserver makes.

Queries are templates with named fields, ``WHERE user_id = {user_id}``, and
parameters are a mapping. `render` turns a template into each driver's own
named parameter style once (sqlite3's ``:user_id``, psycopg's
``%(user_id)s``, with a literal ``%`` doubled for psycopg), by parsing the
fields with `string.Formatter`: no SQL text is searched for a marker to
replace, so a ``%`` inside an SQL literal stays what it is. A ``?`` or ``%s``
anywhere in a template is refused (a leftover of the positional styles;
text that holds one goes in as a parameter).

A unique key already taken is `UniqueViolation`, recognised by the driver's
error code (SQLSTATE 23505 on PostgreSQL, ``SQLITE_CONSTRAINT_UNIQUE`` or
``_PRIMARYKEY`` on SQLite), never by an exception's class name; any other
integrity error (a NOT NULL, a CHECK) propagates as the driver raised it.

Everything a `/sync` can see gets a position from one stream: events,
typing, receipts, account data. The position is one row
(`stream_position`), bumped with ``UPDATE ... RETURNING`` by the transaction
that writes: the row's lock is held until that transaction commits, so
writers take positions one at a time, in commit order, and a reader that has
seen position N has seen everything at or below N (a long-poll never skips a
write that committed late). A PostgreSQL sequence would not give this:
``nextval`` hands numbers out in call order, and they commit in any order.
The row never grows; the old one-row-per-position table did, forever.
Other ids (filters) need only be unique: they come from the database's own
allocator (an identity column on PostgreSQL, ``AUTOINCREMENT`` on SQLite)
through ``INSERT ... RETURNING``.

Rows that are replaced (typing, receipts, account data, the current state)
are written with one ``INSERT ... ON CONFLICT (...) DO UPDATE`` (both
databases), not an update followed by an insert.

SQLite calls block the gevent hub (they are plain C calls), so every
transaction here is a handful of indexed statements. psycopg 3 waits on its
socket through gevent's patched `select`, so PostgreSQL queries do not block
the hub (`tests/homeserver/_hub_probe.py` measures it).

There are no schema migrations: a database made by an older version of the
example is not upgraded (start from an empty state directory).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import sqlite3
import string
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
Params = Mapping[str, Any]

# {serial}: a key the database allocates; {json}: a JSON text column.
SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_position (
    id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ts BIGINT NOT NULL,
    displayname TEXT, avatar_url TEXT
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, id BIGINT NOT NULL UNIQUE, user_id TEXT NOT NULL, device_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_user ON access_tokens (user_id, device_id);
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, display_name TEXT,
    last_seen_ts BIGINT, last_seen_ip TEXT, keys TEXT, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS one_time_keys (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, algorithm TEXT NOT NULL, key_id TEXT NOT NULL,
    key_json TEXT NOT NULL, PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE TABLE IF NOT EXISTS rooms (
    room_id TEXT PRIMARY KEY, creator TEXT NOT NULL, is_public BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS room_aliases (alias TEXT PRIMARY KEY, room_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    stream_ordering BIGINT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, room_id TEXT NOT NULL,
    type TEXT NOT NULL, state_key TEXT, sender TEXT NOT NULL, content TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL, txn_key TEXT UNIQUE, unsigned TEXT
);
CREATE INDEX IF NOT EXISTS events_room ON events (room_id, stream_ordering);
CREATE INDEX IF NOT EXISTS events_state_key ON events (state_key, stream_ordering);
CREATE TABLE IF NOT EXISTS current_state (
    room_id TEXT NOT NULL, type TEXT NOT NULL, state_key TEXT NOT NULL, event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL, membership TEXT, PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX IF NOT EXISTS current_state_members ON current_state (state_key, type, membership);
CREATE TABLE IF NOT EXISTS typing (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, expires_ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL, PRIMARY KEY (room_id, user_id)
);
CREATE TABLE IF NOT EXISTS receipts (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, receipt_type TEXT NOT NULL,
    event_id TEXT NOT NULL, ts BIGINT NOT NULL, stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type)
);
CREATE INDEX IF NOT EXISTS receipts_stream ON receipts (room_id, stream_id);
CREATE TABLE IF NOT EXISTS account_data (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, type TEXT NOT NULL, content TEXT NOT NULL,
    stream_id BIGINT NOT NULL, PRIMARY KEY (user_id, room_id, type)
);
CREATE TABLE IF NOT EXISTS filters (
    filter_id {serial}, user_id TEXT NOT NULL, content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS filters_user ON filters (user_id, filter_id);
INSERT INTO stream_position (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING
"""

SERIAL = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgres": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
}

# Workers and hosts start together: one creates the schema at a time.
_SCHEMA_LOCK = 0x5EC8

# SQLite's extended result codes for a taken unique key (sqlite3 exposes them from Python 3.11).
_SQLITE_UNIQUE = frozenset((sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY))
_PG_UNIQUE_VIOLATION = "23505"


def is_postgres_dsn(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://")) or "dbname=" in database


class UniqueViolation(Exception):
    """A unique key was already taken (either driver, told by its error code)."""


# The name the room handlers used before; the same exception.
IntegrityError = UniqueViolation


@functools.lru_cache(maxsize=1024)
def render(template: str, postgres: bool) -> str:
    """A query template in the driver's named style: ``{name}`` -> ``%(name)s`` or ``:name``.

    `string.Formatter` parses the fields (``{{`` is a literal brace). A
    template must name its fields and use nothing else: a positional ``?``
    or ``%s`` in it is refused, as a leftover of another style.
    """
    out: list[str] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if "?" in literal or "%s" in literal:
            raise ValueError(f"positional placeholder in {template!r}: use {{name}} fields")
        out.append(literal.replace("%", "%%") if postgres else literal)
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"bad field {field!r} in {template!r}")
        out.append(f"%({field})s" if postgres else f":{field}")
    return "".join(out)


def _is_unique_violation(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return getattr(exc, "sqlite_errorcode", None) in _SQLITE_UNIQUE
    return getattr(exc, "sqlstate", None) == _PG_UNIQUE_VIOLATION


class Txn:
    """One transaction: `execute`, `fetchall`, `fetchone`, `next_stream_id`."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor = cursor
        self.postgres = postgres

    def _run(self, template: str, params: Params) -> None:
        try:
            self._cursor.execute(render(template, self.postgres), params)
        except Exception as exc:
            if _is_unique_violation(exc):
                raise UniqueViolation(str(exc)) from exc
            raise

    def execute(self, template: str, params: Params | None = None) -> int:
        """Run one statement; return the number of rows it changed."""
        self._run(template, params or {})
        return int(self._cursor.rowcount)

    def fetchall(self, template: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        self._run(template, params or {})
        return [tuple(row) for row in self._cursor.fetchall()]

    def fetchone(self, template: str, params: Params | None = None) -> tuple[Any, ...] | None:
        self._run(template, params or {})
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def next_stream_id(self) -> int:
        """A new position, visible to readers only once this transaction commits.

        The position row stays locked until then (see the module docstring).
        """
        row = self.fetchone("UPDATE stream_position SET position = position + 1 RETURNING position")
        assert row is not None
        return int(row[0])


@contextlib.contextmanager
def _closed_if_interrupted(conn: Any) -> Iterator[None]:
    """Close the connection when the block ends in an exception while a command is in flight.

    That is a request killed in psycopg's wait (a client gone: gevent kills
    the handler's greenlet): the server is still running its query, so the
    connection cannot roll back or serve anyone else. Closed, the server
    aborts the query; the pool drops the connection and opens another.
    """
    try:
        yield
    except BaseException:
        from psycopg import pq

        if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.ACTIVE:
            conn.close()
        raise


class Database:
    """A SQLite file (or `:memory:`) or a PostgreSQL DSN, with the schema created."""

    def __init__(self, database: str, pool_size: int = 10) -> None:
        self.database = database
        self.postgres = is_postgres_dsn(database)
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._pid = os.getpid()
        with self.transaction() as txn:
            if self.postgres:
                txn.fetchone("SELECT pg_advisory_xact_lock({key})", {"key": _SCHEMA_LOCK})
            # Only a database without the schema gets it (in one transaction, so a
            # schema is whole or absent). Re-running the DDL on every start is not
            # harmless on PostgreSQL: `CREATE INDEX IF NOT EXISTS` locks the table
            # (SHARE) before it finds the index, so a worker starting while others
            # write held `events` against their inserts while its seed row waited
            # for their position row: a deadlock (`tests/homeserver/test_store.py`).
            if not self._has_schema(txn):
                serial = SERIAL["postgres" if self.postgres else "sqlite"]
                for statement in SCHEMA.replace("{serial}", serial).split(";"):
                    if statement.strip():
                        txn.execute(statement)

    def _has_schema(self, txn: Txn) -> bool:
        if self.postgres:
            row = txn.fetchone("SELECT to_regclass('stream_position') IS NOT NULL")
            return bool(row and row[0])
        found = txn.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stream_position'")
        return found is not None

    # -- SQLite: one connection, one transaction at a time -------------------

    def _sqlite_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            conn = sqlite3.connect(self.database, check_same_thread=False, isolation_level=None)
            if self.database != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._sqlite = conn
        return self._sqlite

    # -- PostgreSQL: a small pool, refilled lazily ---------------------------

    def _pg_acquire(self) -> Any:
        import psycopg

        if self._pid != os.getpid():
            # Forked (gunicorn workers): the parent's connections are not ours.
            self._pool, self._created, self._pid = queue.LifoQueue(), 0, os.getpid()
        with self._lock:
            create = self._pool.empty() and self._created < self._pool_size
            if create:
                self._created += 1
        if create:
            try:
                # Autocommit: reads go without BEGIN/COMMIT round trips (see
                # `transaction`); writes open an explicit transaction.
                return psycopg.connect(self.database, autocommit=True)
            except Exception:
                with self._lock:
                    self._created -= 1
                raise
        return self._pool.get()

    def _pg_release(self, conn: Any) -> None:
        """Back to the pool, unless it is closed, broken or not idle (then it is dropped)."""
        from psycopg import pq

        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.close()
            with self._lock:
                self._created -= 1
            return
        self._pool.put(conn)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Txn]:
        """Run the block in one transaction; commit at the end, roll back on error."""
        if not self.postgres:
            with self._lock:
                conn = self._sqlite_connection()
                cursor = conn.cursor()
                if not write:
                    # As on PostgreSQL below: statements on their own.
                    yield Txn(cursor, postgres=False)
                    return
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield Txn(cursor, postgres=False)
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            return
        conn = self._pg_acquire()
        try:
            if write:
                with conn.transaction(), conn.cursor() as cursor, _closed_if_interrupted(conn):
                    yield Txn(cursor, postgres=True)
            else:
                # Reads need no transaction: each statement sees every position
                # up to the newest committed one (writers take positions in
                # commit order), and readers bound what they read by the position they saw
                # first: no snapshot needed, two round trips saved.
                with conn.cursor() as cursor, _closed_if_interrupted(conn):
                    yield Txn(cursor, postgres=True)
        finally:
            self._pg_release(conn)

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        while not self._pool.empty():
            self._pool.get().close()


@dataclass
class UserSyncState:
    position: int
    memberships: list[tuple[str, str]]  # (room_id, "join" | "invite")
    membership_changes: list[tuple[str, str | None, int]]  # (room_id, membership, position), in order
    account_data: list[tuple[str, str, JsonDict]]  # (room_id or "", type, content)


@dataclass
class RoomChanges:
    events: list[Event]  # newest first
    typing: list[tuple[str, int, int]]  # (user_id, expires_ts, stream_id), every row up to the position
    receipts: list[tuple[str, str, str, int]]  # (user_id, receipt_type, event_id, ts) changed in the range


@dataclass(frozen=True)
class Event:
    stream_ordering: int
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: JsonDict
    origin_server_ts: int
    txn_key: str | None
    # What the server adds: for a state event that replaced one, `prev_content`,
    # `prev_sender` and `replaces_state` (the spec's `unsigned` fields).
    unsigned: JsonDict | None = None

    def to_client(self, txn_prefix: str | None = None) -> JsonDict:
        """The client-server API format; the sender's own device sees its txn id."""
        event: JsonDict = {
            "event_id": self.event_id,
            "room_id": self.room_id,
            "type": self.type,
            "sender": self.sender,
            "content": self.content,
            "origin_server_ts": self.origin_server_ts,
            "unsigned": dict(self.unsigned) if self.unsigned else {},
        }
        if self.state_key is not None:
            event["state_key"] = self.state_key
        if self.type == "m.room.redaction" and "redacts" in self.content:
            # Stored in the content (room version 11's place); room version 10
            # has it at the top level: clients read either, as Synapse serves both.
            event["redacts"] = self.content["redacts"]
        if txn_prefix is not None and self.txn_key is not None and self.txn_key.startswith(txn_prefix):
            event["unsigned"]["transaction_id"] = self.txn_key[len(txn_prefix) :]
        return event

    def stripped(self) -> JsonDict:
        """Stripped state, as invites carry it."""
        return {
            "type": self.type,
            "state_key": self.state_key,
            "sender": self.sender,
            "content": self.content,
        }


EVENT_COLUMNS = (
    "stream_ordering, event_id, room_id, type, state_key, sender, content, origin_server_ts,"
    " txn_key, unsigned"
)


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        json.loads(row[6]),
        int(row[7]),
        row[8],
        json.loads(row[9]) if row[9] else None,
    )


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in EVENT_COLUMNS.split(","))


def _in_list(name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``{name0}, {name1}, ...`` and its parameters, for an ``IN (...)``."""
    params = {f"{name}{index}": value for index, value in enumerate(values)}
    return ", ".join("{" + key + "}" for key in params), params


@dataclass(frozen=True)
class Device:
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None

    def to_client(self, user_id: str) -> JsonDict:
        return {
            "user_id": user_id,
            "device_id": self.device_id,
            "display_name": self.display_name,
            "last_seen_ts": self.last_seen_ts,
            "last_seen_ip": self.last_seen_ip,
        }


class Store:
    """Every query of the homeserver, each in a short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- positions -------------------------------------------------------

    def current_position(self, txn: Txn | None = None) -> int:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.current_position(txn)
        row = txn.fetchone("SELECT position FROM stream_position")
        return int(row[0]) if row else 0

    # -- users, tokens and devices -----------------------------------------------

    def create_user(self, user_id: str, password_hash: str, now_ms: int) -> bool:
        try:
            with self.db.transaction() as txn:
                txn.execute(
                    "INSERT INTO users (user_id, password_hash, created_ts)"
                    " VALUES ({user_id}, {password_hash}, {now})",
                    {"user_id": user_id, "password_hash": password_hash, "now": now_ms},
                )
        except UniqueViolation:
            return False
        return True

    def user_exists(self, user_id: str, txn: Txn | None = None) -> bool:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.user_exists(user_id, txn)
        return txn.fetchone("SELECT 1 FROM users WHERE user_id = {user_id}", {"user_id": user_id}) is not None

    def get_password_hash(self, user_id: str) -> str | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT password_hash FROM users WHERE user_id = {user_id}", {"user_id": user_id}
            )
        return row[0] if row else None

    def add_access_token(
        self,
        token: str,
        token_id: int,
        user_id: str,
        device_id: str,
        display_name: str | None = None,
        now_ms: int | None = None,
        ip: str | None = None,
    ) -> None:
        """A new token for a device (made, or named anew when `display_name` is given)."""
        with self.db.transaction() as txn:
            txn.execute(
                "INSERT INTO access_tokens (token, id, user_id, device_id)"
                " VALUES ({token}, {id}, {user_id}, {device_id})",
                {"token": token, "id": token_id, "user_id": user_id, "device_id": device_id},
            )
            txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip)"
                " VALUES ({user_id}, {device_id}, {display_name}, {now}, {ip})"
                " ON CONFLICT (user_id, device_id) DO UPDATE SET"
                " display_name = COALESCE(excluded.display_name, devices.display_name),"
                " last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip",
                {
                    "user_id": user_id,
                    "device_id": device_id,
                    "display_name": display_name,
                    "now": now_ms,
                    "ip": ip,
                },
            )

    def get_user_by_access_token(self, token: str) -> tuple[str, str, int] | None:
        """(user_id, device_id, token id) for a live token."""
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT user_id, device_id, id FROM access_tokens WHERE token = {token}", {"token": token}
            )
        return (row[0], row[1], int(row[2])) if row else None

    def delete_access_token(self, token: str) -> None:
        """Log out one token: its device goes with it (as the spec's /logout says)."""
        with self.db.transaction() as txn:
            row = txn.fetchone(
                "DELETE FROM access_tokens WHERE token = {token} RETURNING user_id, device_id",
                {"token": token},
            )
            if row is not None:
                self._delete_device(txn, row[0], row[1])

    def delete_all_access_tokens(self, user_id: str) -> None:
        with self.db.transaction() as txn:
            txn.execute("DELETE FROM access_tokens WHERE user_id = {user_id}", {"user_id": user_id})
            for table in ("devices", "one_time_keys"):
                txn.execute(f"DELETE FROM {table} WHERE user_id = {{user_id}}", {"user_id": user_id})

    def _delete_device(self, txn: Txn, user_id: str, device_id: str) -> int:
        params = {"user_id": user_id, "device_id": device_id}
        txn.execute("DELETE FROM access_tokens WHERE user_id = {user_id} AND device_id = {device_id}", params)
        txn.execute("DELETE FROM one_time_keys WHERE user_id = {user_id} AND device_id = {device_id}", params)
        return txn.execute(
            "DELETE FROM devices WHERE user_id = {user_id} AND device_id = {device_id}", params
        )

    def delete_device(self, user_id: str, device_id: str) -> bool:
        """The device, its tokens and its keys; whether it existed."""
        with self.db.transaction() as txn:
            return self._delete_device(txn, user_id, device_id) > 0

    def get_devices(self, user_id: str, device_id: str | None = None) -> list[Device]:
        query = (
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
            " WHERE user_id = {user_id}"
        )
        if device_id is not None:
            query += " AND device_id = {device_id}"
        with self.db.transaction(write=False) as txn:
            rows = txn.fetchall(query + " ORDER BY device_id", {"user_id": user_id, "device_id": device_id})
        return [Device(*row) for row in rows]

    def set_device_display_name(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        with self.db.transaction() as txn:
            return (
                txn.execute(
                    "UPDATE devices SET display_name = {name}"
                    " WHERE user_id = {user_id} AND device_id = {device_id}",
                    {"name": display_name, "user_id": user_id, "device_id": device_id},
                )
                > 0
            )

    # -- end-to-end keys: stored and handed back, never interpreted --------------

    def set_device_keys(self, user_id: str, device_id: str, keys: JsonDict) -> None:
        with self.db.transaction() as txn:
            txn.execute(
                "UPDATE devices SET keys = {keys} WHERE user_id = {user_id} AND device_id = {device_id}",
                {"keys": json.dumps(keys), "user_id": user_id, "device_id": device_id},
            )

    def add_one_time_keys(
        self, user_id: str, device_id: str, keys: Iterable[tuple[str, str, JsonDict]]
    ) -> None:
        with self.db.transaction() as txn:
            for algorithm, key_id, key in keys:
                txn.execute(
                    "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
                    " VALUES ({user_id}, {device_id}, {algorithm}, {key_id}, {key})"
                    " ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
                    {
                        "user_id": user_id,
                        "device_id": device_id,
                        "algorithm": algorithm,
                        "key_id": key_id,
                        "key": json.dumps(key),
                    },
                )

    def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        with self.db.transaction(write=False) as txn:
            rows = txn.fetchall(
                "SELECT algorithm, COUNT(*) FROM one_time_keys"
                " WHERE user_id = {user_id} AND device_id = {device_id} GROUP BY algorithm",
                {"user_id": user_id, "device_id": device_id},
            )
        return {row[0]: int(row[1]) for row in rows}

    def get_device_keys(self, user_id: str) -> dict[str, JsonDict]:
        with self.db.transaction(write=False) as txn:
            rows = txn.fetchall(
                "SELECT device_id, keys FROM devices WHERE user_id = {user_id} AND keys IS NOT NULL",
                {"user_id": user_id},
            )
        return {row[0]: json.loads(row[1]) for row in rows}

    def claim_one_time_key(self, user_id: str, device_id: str, algorithm: str) -> tuple[str, JsonDict] | None:
        """Take one key of `algorithm` (each is handed out once)."""
        with self.db.transaction() as txn:
            row = txn.fetchone(
                "SELECT key_id, key_json FROM one_time_keys WHERE user_id = {user_id}"
                " AND device_id = {device_id} AND algorithm = {algorithm} ORDER BY key_id LIMIT 1",
                {"user_id": user_id, "device_id": device_id, "algorithm": algorithm},
            )
            if row is None:
                return None
            txn.execute(
                "DELETE FROM one_time_keys WHERE user_id = {user_id} AND device_id = {device_id}"
                " AND algorithm = {algorithm} AND key_id = {key_id}",
                {"user_id": user_id, "device_id": device_id, "algorithm": algorithm, "key_id": row[0]},
            )
        return f"{algorithm}:{row[0]}", json.loads(row[1])

    # -- profiles ----------------------------------------------------------------

    def get_profile(self, user_id: str, txn: Txn | None = None) -> tuple[str | None, str | None] | None:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_profile(user_id, txn)
        row = txn.fetchone(
            "SELECT displayname, avatar_url FROM users WHERE user_id = {user_id}", {"user_id": user_id}
        )
        return (row[0], row[1]) if row else None

    def set_profile_field(self, txn: Txn, user_id: str, field: str, value: str | None) -> None:
        assert field in ("displayname", "avatar_url")
        txn.execute(
            f"UPDATE users SET {field} = {{value}} WHERE user_id = {{user_id}}",
            {"value": value, "user_id": user_id},
        )

    # -- rooms and events ----------------------------------------------------

    def create_room(self, txn: Txn, room_id: str, creator: str) -> None:
        txn.execute(
            "INSERT INTO rooms (room_id, creator) VALUES ({room_id}, {creator})",
            {"room_id": room_id, "creator": creator},
        )

    def room_exists(self, room_id: str, txn: Txn | None = None) -> bool:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.room_exists(room_id, txn)
        return txn.fetchone("SELECT 1 FROM rooms WHERE room_id = {room_id}", {"room_id": room_id}) is not None

    def set_room_public(self, room_id: str, public: bool) -> None:
        with self.db.transaction() as txn:
            txn.execute(
                "UPDATE rooms SET is_public = {public} WHERE room_id = {room_id}",
                {"public": public, "room_id": room_id},
            )

    def is_room_public(self, room_id: str) -> bool:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT is_public FROM rooms WHERE room_id = {room_id}", {"room_id": room_id})
        return bool(row and row[0])

    def get_public_rooms(self, after: int, limit: int, search: str | None) -> tuple[list[JsonDict], int]:
        """The directory, ordered by joined members then room id: (page, total count).

        `after` is how many rooms earlier pages held (the `since` token).
        """
        with self.db.transaction(write=False) as txn:
            rows = txn.fetchall(
                "SELECT r.room_id, COUNT(m.state_key) FROM rooms r LEFT JOIN current_state m"
                " ON m.room_id = r.room_id AND m.type = 'm.room.member' AND m.membership = 'join'"
                " WHERE r.is_public GROUP BY r.room_id ORDER BY COUNT(m.state_key) DESC, r.room_id",
            )
            chunk: list[JsonDict] = []
            for room_id, members in rows:
                state = {
                    (event.type, event.state_key): event.content
                    for event in self.get_current_state(room_id, txn)
                }
                entry: JsonDict = {
                    "room_id": room_id,
                    "num_joined_members": int(members),
                    "world_readable": state.get(("m.room.history_visibility", ""), {}).get(
                        "history_visibility"
                    )
                    == "world_readable",
                    "guest_can_join": state.get(("m.room.guest_access", ""), {}).get("guest_access")
                    == "can_join",
                    "join_rule": state.get(("m.room.join_rules", ""), {}).get("join_rule", "invite"),
                }
                for key, event_type, field in (
                    ("name", "m.room.name", "name"),
                    ("topic", "m.room.topic", "topic"),
                    ("canonical_alias", "m.room.canonical_alias", "alias"),
                    ("avatar_url", "m.room.avatar", "url"),
                ):
                    value = state.get((event_type, ""), {}).get(field)
                    if isinstance(value, str):
                        entry[key] = value
                chunk.append(entry)
        if search:
            needle = search.casefold()
            chunk = [
                entry
                for entry in chunk
                if any(
                    needle in str(entry.get(key, "")).casefold()
                    for key in ("name", "topic", "canonical_alias")
                )
            ]
        return chunk[after : after + limit], len(chunk)

    def add_alias(self, txn: Txn, alias: str, room_id: str) -> bool:
        try:
            txn.execute(
                "INSERT INTO room_aliases (alias, room_id) VALUES ({alias}, {room_id})",
                {"alias": alias, "room_id": room_id},
            )
        except UniqueViolation:
            return False
        return True

    def alias_taken(self, alias: str) -> bool:
        return self.get_room_for_alias(alias) is not None

    def get_room_for_alias(self, alias: str) -> str | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT room_id FROM room_aliases WHERE alias = {alias}", {"alias": alias})
        return row[0] if row else None

    def persist_event(
        self,
        txn: Txn,
        event_id: str,
        room_id: str,
        event_type: str,
        state_key: str | None,
        sender: str,
        content: JsonDict,
        now_ms: int,
        txn_key: str | None = None,
    ) -> Event:
        """Append an event (and, for state, update the room's current state).

        A state event that replaces one carries the old one's content and
        sender in `unsigned` (`prev_content`, `prev_sender`, `replaces_state`),
        as clients expect (they diff member events with it).
        """
        position = txn.next_stream_id()
        unsigned: JsonDict | None = None
        if state_key is not None:
            previous = self.get_state_event(room_id, event_type, state_key, txn)
            if previous is not None:
                unsigned = {
                    "prev_content": previous.content,
                    "prev_sender": previous.sender,
                    "replaces_state": previous.event_id,
                }
        txn.execute(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({{stream_ordering}}, {{event_id}}, {{room_id}},"
            " {type}, {state_key}, {sender}, {content}, {ts}, {txn_key}, {unsigned})",
            {
                "stream_ordering": position,
                "event_id": event_id,
                "room_id": room_id,
                "type": event_type,
                "state_key": state_key,
                "sender": sender,
                "content": json.dumps(content),
                "ts": now_ms,
                "txn_key": txn_key,
                "unsigned": json.dumps(unsigned) if unsigned else None,
            },
        )
        if state_key is not None:
            txn.execute(
                "INSERT INTO current_state (room_id, type, state_key, event_id, stream_ordering, membership)"
                " VALUES ({room_id}, {type}, {state_key}, {event_id}, {position}, {membership})"
                " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id,"
                " stream_ordering = excluded.stream_ordering, membership = excluded.membership",
                {
                    "room_id": room_id,
                    "type": event_type,
                    "state_key": state_key,
                    "event_id": event_id,
                    "position": position,
                    "membership": content.get("membership") if event_type == "m.room.member" else None,
                },
            )
        return Event(
            position, event_id, room_id, event_type, state_key, sender, content, now_ms, txn_key, unsigned
        )

    def get_event_by_txn(self, txn_key: str) -> Event | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE txn_key = {{txn_key}}", {"txn_key": txn_key}
            )
        return _event(row) if row else None

    def get_event(self, event_id: str) -> Event | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = {{event_id}}", {"event_id": event_id}
            )
        return _event(row) if row else None

    def get_membership(self, room_id: str, user_id: str, txn: Txn | None = None) -> str | None:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_membership(room_id, user_id, txn)
        row = txn.fetchone(
            "SELECT membership FROM current_state"
            " WHERE room_id = {room_id} AND type = 'm.room.member' AND state_key = {user_id}",
            {"room_id": room_id, "user_id": user_id},
        )
        return row[0] if row else None

    def get_state_event(
        self, room_id: str, event_type: str, state_key: str, txn: Txn | None = None
    ) -> Event | None:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_state_event(room_id, event_type, state_key, txn)
        row = txn.fetchone(
            f"SELECT {_prefixed('e')} FROM current_state s JOIN events e ON e.event_id = s.event_id"
            " WHERE s.room_id = {room_id} AND s.type = {type} AND s.state_key = {state_key}",
            {"room_id": room_id, "type": event_type, "state_key": state_key},
        )
        return _event(row) if row else None

    def get_current_state(self, room_id: str, txn: Txn | None = None) -> list[Event]:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_current_state(room_id, txn)
        rows = txn.fetchall(
            f"SELECT {_prefixed('e')} FROM current_state s JOIN events e ON e.event_id = s.event_id"
            " WHERE s.room_id = {room_id} ORDER BY e.stream_ordering",
            {"room_id": room_id},
        )
        return [_event(row) for row in rows]

    def get_room_members(self, room_id: str, membership: str | None = None) -> list[Event]:
        return [
            event
            for event in self.get_current_state(room_id)
            if event.type == "m.room.member"
            and (membership is None or event.content.get("membership") == membership)
        ]

    def get_rooms_for_user(
        self, user_id: str, memberships: Iterable[str] = ("join",), txn: Txn | None = None
    ) -> list[str]:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_rooms_for_user(user_id, memberships, txn)
        fields, params = _in_list("membership", memberships)
        rows = txn.fetchall(
            "SELECT room_id FROM current_state WHERE state_key = {user_id} AND type = 'm.room.member'"
            f" AND membership IN ({fields}) ORDER BY room_id",
            {"user_id": user_id, **params},
        )
        return [row[0] for row in rows]

    def get_user_sync_state(self, txn: Txn, user_id: str, since: int) -> UserSyncState:
        """What a sync needs of one user, in one statement (one round trip, one snapshot).

        The newest position; the rooms the user is in or invited to; the
        user's membership changes and account data after `since`. The caller
        drops whatever lies beyond the position (committed meanwhile).
        """
        rows = txn.fetchall(
            "SELECT 'p', CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), position"
            " FROM stream_position"
            " UNION ALL SELECT 'm', room_id, membership, NULL, 0 FROM current_state"
            " WHERE state_key = {user_id} AND type = 'm.room.member' AND membership IN ('join', 'invite')"
            " UNION ALL SELECT 'c', room_id, content, NULL, stream_ordering FROM events"
            " WHERE state_key = {user_id} AND type = 'm.room.member' AND stream_ordering > {since}"
            " UNION ALL SELECT 'a', room_id, type, content, stream_id FROM account_data"
            " WHERE user_id = {user_id} AND stream_id > {since}",
            {"user_id": user_id, "since": since},
        )
        position = next(int(row[4]) for row in rows if row[0] == "p")
        state = UserSyncState(position, [], [], [])
        for kind, first, second, third, number in sorted(rows, key=lambda row: int(row[4])):
            if kind == "m":
                state.memberships.append((first, second))
            elif int(number) > state.position:
                continue  # committed after the position was read
            elif kind == "c":
                state.membership_changes.append((first, json.loads(second).get("membership"), int(number)))
            elif kind == "a":
                state.account_data.append((first, second, json.loads(third)))
        return state

    def get_room_events(
        self, txn: Txn, room_id: str, after: int, upto: int, limit: int, newest_first: bool = True
    ) -> list[Event]:
        """Events in (after, upto], the newest `limit` (or oldest), in that order."""
        order = "DESC" if newest_first else "ASC"
        rows = txn.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE room_id = {{room_id}} AND stream_ordering > {{after}}"
            f" AND stream_ordering <= {{upto}} ORDER BY stream_ordering {order} LIMIT {{limit}}",
            {"room_id": room_id, "after": after, "upto": upto, "limit": limit},
        )
        return [_event(row) for row in rows]

    def get_room_changes(self, txn: Txn, room_id: str, since: int, upto: int, limit: int) -> RoomChanges:
        """A room's newest `limit` events in (since, upto], its typing rows and its
        receipts changed in that range: one statement, one round trip."""
        # One column list for the three kinds (PostgreSQL wants each column of one type):
        # typing and receipts put their numbers where the events have theirs.
        rows = txn.fetchall(
            f"SELECT * FROM (SELECT 'e', {EVENT_COLUMNS} FROM events"
            "  WHERE room_id = {room_id} AND stream_ordering > {since} AND stream_ordering <= {upto}"
            "  ORDER BY stream_ordering DESC LIMIT {limit}) AS newest"
            " UNION ALL SELECT 't', stream_id, user_id, NULL, NULL, NULL, NULL, NULL, expires_ts, NULL, NULL"
            " FROM typing WHERE room_id = {room_id} AND stream_id <= {upto}"
            " UNION ALL SELECT 'r', stream_id, user_id, receipt_type, event_id, NULL, NULL, NULL, ts,"
            " NULL, NULL"
            " FROM receipts WHERE room_id = {room_id} AND stream_id > {since} AND stream_id <= {upto}",
            {"room_id": room_id, "since": since, "upto": upto, "limit": limit},
        )
        changes = RoomChanges([], [], [])
        for row in rows:
            if row[0] == "e":
                changes.events.append(_event(row[1:]))
            elif row[0] == "t":
                changes.typing.append((row[2], int(row[8]), int(row[1])))
            else:
                changes.receipts.append((row[2], row[3], row[4], int(row[8])))
        changes.events.sort(key=lambda event: event.stream_ordering, reverse=True)
        return changes

    # -- typing, receipts, account data, filters ---------------------------------

    def set_typing(self, room_id: str, user_id: str, expires_ts: int) -> int:
        with self.db.transaction() as txn:
            position = txn.next_stream_id()
            txn.execute(
                "INSERT INTO typing (room_id, user_id, expires_ts, stream_id)"
                " VALUES ({room_id}, {user_id}, {expires_ts}, {position})"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET"
                " expires_ts = excluded.expires_ts, stream_id = excluded.stream_id",
                {"room_id": room_id, "user_id": user_id, "expires_ts": expires_ts, "position": position},
            )
        return position

    def set_receipt(self, room_id: str, user_id: str, receipt_type: str, event_id: str, ts: int) -> int:
        with self.db.transaction() as txn:
            position = txn.next_stream_id()
            txn.execute(
                "INSERT INTO receipts (room_id, user_id, receipt_type, event_id, ts, stream_id)"
                " VALUES ({room_id}, {user_id}, {receipt_type}, {event_id}, {ts}, {position})"
                " ON CONFLICT (room_id, user_id, receipt_type) DO UPDATE SET"
                " event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id",
                {
                    "room_id": room_id,
                    "user_id": user_id,
                    "receipt_type": receipt_type,
                    "event_id": event_id,
                    "ts": ts,
                    "position": position,
                },
            )
        return position

    def set_account_data(self, user_id: str, room_id: str, data_type: str, content: JsonDict) -> int:
        with self.db.transaction() as txn:
            position = txn.next_stream_id()
            txn.execute(
                "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
                " VALUES ({user_id}, {room_id}, {type}, {content}, {position})"
                " ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
                " content = excluded.content, stream_id = excluded.stream_id",
                {
                    "user_id": user_id,
                    "room_id": room_id,
                    "type": data_type,
                    "content": json.dumps(content),
                    "position": position,
                },
            )
        return position

    def get_account_data(self, user_id: str, room_id: str, data_type: str) -> JsonDict | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT content FROM account_data"
                " WHERE user_id = {user_id} AND room_id = {room_id} AND type = {type}",
                {"user_id": user_id, "room_id": room_id, "type": data_type},
            )
        return json.loads(row[0]) if row else None

    def add_filter(self, user_id: str, content: JsonDict) -> int:
        """A new filter id, from the database's own allocator (unique under any concurrency)."""
        with self.db.transaction() as txn:
            row = txn.fetchone(
                "INSERT INTO filters (user_id, content) VALUES ({user_id}, {content}) RETURNING filter_id",
                {"user_id": user_id, "content": json.dumps(content)},
            )
        assert row is not None
        return int(row[0])

    def get_filter(self, user_id: str, filter_id: int) -> JsonDict | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT content FROM filters WHERE user_id = {user_id} AND filter_id = {filter_id}",
                {"user_id": user_id, "filter_id": filter_id},
            )
        return json.loads(row[0]) if row else None


# -- authorization rules, redactions, password hashes (hsauth) -------------------
#
# Kept together at the end of the module: the queries that the room
# authorization rules (`auth_rules.py`), redactions and password re-hashing
# need, on the SQL plumbing above. Functions of a `Store` (or of a transaction),
# so that they merge apart from the class above.


def get_auth_state(
    store: Store, txn: Txn, room_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], JsonDict]:
    """The contents of the current state entries `keys` of a room: what the rules check against.

    On PostgreSQL the writers' lock (the one-row stream position, which every
    writer takes in `next_stream_id`) is taken first, in its own statement, so
    that the read after it sees every write committed before it was granted:
    the state checked is then the state the event is written on, with no
    other writer in between. On SQLite the write transaction already holds
    the database.
    """
    if store.db.postgres:
        txn.fetchone("SELECT position FROM stream_position FOR UPDATE")
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    params: dict[str, Any] = {"room_id": room_id}
    conditions = []
    for index, (event_type, state_key) in enumerate(wanted):
        conditions.append(f"(s.type = {{type{index}}} AND s.state_key = {{key{index}}})")
        params[f"type{index}"] = event_type
        params[f"key{index}"] = state_key
    rows = txn.fetchall(
        "SELECT s.type, s.state_key, e.content FROM current_state s JOIN events e ON e.event_id = s.event_id"
        f" WHERE s.room_id = {{room_id}} AND ({' OR '.join(conditions)})",
        params,
    )
    return {(row[0], row[1]): json.loads(row[2]) for row in rows}


def get_event_in(txn: Txn, event_id: str) -> Event | None:
    """`Store.get_event` inside a transaction already open (a write's)."""
    row = txn.fetchone(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = {{event_id}}", {"event_id": event_id}
    )
    return _event(row) if row else None


def replace_event_content(txn: Txn, event: Event, content: JsonDict) -> None:
    """Store the redacted form of an event: only what the redaction algorithm keeps.

    A state event's content is also copied, at write time, into the
    `unsigned.prev_content` of the event that replaced it: that copy is
    redacted too, or the next event would still serve what was redacted.
    """
    txn.execute(
        "UPDATE events SET content = {content} WHERE event_id = {event_id}",
        {"content": json.dumps(content), "event_id": event.event_id},
    )
    if event.state_key is None:
        return
    row = txn.fetchone(
        "SELECT event_id, unsigned FROM events WHERE room_id = {room_id} AND type = {type}"
        " AND state_key = {state_key} AND stream_ordering > {after} ORDER BY stream_ordering LIMIT 1",
        {
            "room_id": event.room_id,
            "type": event.type,
            "state_key": event.state_key,
            "after": event.stream_ordering,
        },
    )
    if row is None or not row[1]:
        return
    unsigned = json.loads(row[1])
    if unsigned.get("replaces_state") != event.event_id:
        return
    unsigned["prev_content"] = content
    txn.execute(
        "UPDATE events SET unsigned = {unsigned} WHERE event_id = {event_id}",
        {"unsigned": json.dumps(unsigned), "event_id": row[0]},
    )


def set_password_hash(store: Store, user_id: str, password_hash: str) -> None:
    """Replace a user's hash (an old PBKDF2 hash is upgraded to bcrypt at the next login)."""
    with store.db.transaction() as txn:
        txn.execute(
            "UPDATE users SET password_hash = {password_hash} WHERE user_id = {user_id}",
            {"password_hash": password_hash, "user_id": user_id},
        )
