"""Storage: the same SQL on SQLite (the default) and PostgreSQL (given a DSN).

`Database` hides the two drivers behind one `transaction()`; `Store` holds
every query the homeserver makes. Queries are written with `?` placeholders
and turned into psycopg's `%s` for PostgreSQL.

Everything a `/sync` can see gets a position from one stream (`stream_ids`):
events, typing, receipts, account data. Writers allocate positions inside a
transaction that holds a global lock (SQLite: the single connection's lock;
PostgreSQL: an advisory transaction lock), so positions become visible in
order: a reader that has seen position N has seen everything below N, and a
long-poll never skips a write that committed late.

SQLite calls block the gevent hub (they are plain C calls), so every
transaction here is a handful of indexed statements. psycopg 3 waits on its
socket through gevent's patched `select`, so PostgreSQL queries do not block
the hub (`tests/homeserver/_hub_probe.py` measures it).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

# A serial key: SQLite's AUTOINCREMENT, PostgreSQL's BIGSERIAL.
SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_ids (stream_id {serial} PRIMARY KEY, dummy INTEGER);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ts BIGINT NOT NULL,
    displayname TEXT, avatar_url TEXT
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, id BIGINT NOT NULL UNIQUE, user_id TEXT NOT NULL, device_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_user ON access_tokens (user_id);
CREATE TABLE IF NOT EXISTS rooms (room_id TEXT PRIMARY KEY, creator TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS room_aliases (alias TEXT PRIMARY KEY, room_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    stream_ordering BIGINT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, room_id TEXT NOT NULL,
    type TEXT NOT NULL, state_key TEXT, sender TEXT NOT NULL, content TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL, txn_key TEXT UNIQUE
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
    user_id TEXT NOT NULL, filter_id BIGINT NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
"""

# Held by every PostgreSQL transaction that allocates stream positions.
_STREAM_LOCK = 0x5EC7
_SCHEMA_LOCK = 0x5EC8


def is_postgres_dsn(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://")) or "dbname=" in database


class IntegrityError(Exception):
    """A unique key was already taken (either driver)."""


class Txn:
    """One transaction: `execute`, `fetchall`, `fetchone`, `next_stream_id`."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self._cursor = cursor
        self._postgres = postgres
        self._stream_locked = False

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        try:
            self._cursor.execute(self._sql(sql), params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except Exception as exc:
            if type(exc).__name__ in ("UniqueViolation", "IntegrityError"):
                raise IntegrityError(str(exc)) from exc
            raise
        return int(self._cursor.rowcount)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._sql(sql), params)
        return list(self._cursor.fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cursor.execute(self._sql(sql), params)
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def next_stream_id(self) -> int:
        """A new position, visible to readers only once this transaction commits."""
        if self._postgres and not self._stream_locked:
            # The lock and the allocation in one round trip.
            self._stream_locked = True
            row = self.fetchone(
                "WITH locked AS (SELECT pg_advisory_xact_lock(?))"
                " INSERT INTO stream_ids (dummy) SELECT NULL FROM locked RETURNING stream_id",
                (_STREAM_LOCK,),
            )
        else:
            row = self.fetchone("INSERT INTO stream_ids (dummy) VALUES (NULL) RETURNING stream_id")
        assert row is not None
        return int(row[0])


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
            serial = "BIGSERIAL" if self.postgres else "INTEGER"
            if self.postgres:
                # Workers and hosts start together: one creates the schema at a time.
                txn.fetchone("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in SCHEMA.format(serial=serial).split(";"):
                if statement.strip():
                    sql = statement
                    if not self.postgres:
                        sql = sql.replace("INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT", 1)
                    txn.execute(sql)

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
        if conn.closed or conn.broken:
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
                with conn.transaction(), conn.cursor() as cursor:
                    yield Txn(cursor, postgres=True)
            else:
                # Reads need no transaction: each statement sees every position
                # up to the newest committed one (writers allocate positions in
                # commit order), and readers bound what they read by the position they saw
                # first: no snapshot needed, two round trips saved.
                with conn.cursor() as cursor:
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

    def to_client(self, txn_prefix: str | None = None) -> JsonDict:
        """The client-server API format; the sender's own device sees its txn id."""
        event: JsonDict = {
            "event_id": self.event_id,
            "room_id": self.room_id,
            "type": self.type,
            "sender": self.sender,
            "content": self.content,
            "origin_server_ts": self.origin_server_ts,
            "unsigned": {},
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
    "stream_ordering, event_id, room_id, type, state_key, sender, content, origin_server_ts, txn_key"
)


def _event(row: tuple[Any, ...]) -> Event:
    return Event(int(row[0]), row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), int(row[7]), row[8])


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class Store:
    """Every query of the homeserver, each in a short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- positions -------------------------------------------------------

    def current_position(self, txn: Txn | None = None) -> int:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.current_position(txn)
        row = txn.fetchone("SELECT COALESCE(MAX(stream_id), 0) FROM stream_ids")
        return int(row[0]) if row else 0

    # -- users and tokens ----------------------------------------------------

    def create_user(self, user_id: str, password_hash: str, now_ms: int) -> bool:
        try:
            with self.db.transaction() as txn:
                txn.execute(
                    "INSERT INTO users (user_id, password_hash, created_ts) VALUES (?, ?, ?)",
                    (user_id, password_hash, now_ms),
                )
        except IntegrityError:
            return False
        return True

    def user_exists(self, user_id: str) -> bool:
        with self.db.transaction(write=False) as txn:
            return txn.fetchone("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None

    def get_password_hash(self, user_id: str) -> str | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT password_hash FROM users WHERE user_id = ?", (user_id,))
        return row[0] if row else None

    def add_access_token(self, token: str, token_id: int, user_id: str, device_id: str) -> None:
        with self.db.transaction() as txn:
            txn.execute(
                "INSERT INTO access_tokens (token, id, user_id, device_id) VALUES (?, ?, ?, ?)",
                (token, token_id, user_id, device_id),
            )

    def get_user_by_access_token(self, token: str) -> tuple[str, str, int] | None:
        """(user_id, device_id, token id) for a live token."""
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT user_id, device_id, id FROM access_tokens WHERE token = ?", (token,))
        return (row[0], row[1], int(row[2])) if row else None

    def delete_access_token(self, token: str) -> None:
        with self.db.transaction() as txn:
            txn.execute("DELETE FROM access_tokens WHERE token = ?", (token,))

    def delete_all_access_tokens(self, user_id: str) -> None:
        with self.db.transaction() as txn:
            txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))

    def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT displayname, avatar_url FROM users WHERE user_id = ?", (user_id,))
        return (row[0], row[1]) if row else None

    def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        assert field in ("displayname", "avatar_url")
        with self.db.transaction() as txn:
            txn.execute(f"UPDATE users SET {field} = ? WHERE user_id = ?", (value, user_id))

    # -- rooms and events ----------------------------------------------------

    def create_room(self, txn: Txn, room_id: str, creator: str) -> None:
        txn.execute("INSERT INTO rooms (room_id, creator) VALUES (?, ?)", (room_id, creator))

    def room_exists(self, room_id: str) -> bool:
        with self.db.transaction(write=False) as txn:
            return txn.fetchone("SELECT 1 FROM rooms WHERE room_id = ?", (room_id,)) is not None

    def add_alias(self, txn: Txn, alias: str, room_id: str) -> bool:
        try:
            txn.execute("INSERT INTO room_aliases (alias, room_id) VALUES (?, ?)", (alias, room_id))
        except IntegrityError:
            return False
        return True

    def alias_taken(self, alias: str) -> bool:
        return self.get_room_for_alias(alias) is not None

    def get_room_for_alias(self, alias: str) -> str | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone("SELECT room_id FROM room_aliases WHERE alias = ?", (alias,))
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
        """Append an event (and, for state, update the room's current state)."""
        position = txn.next_stream_id()
        txn.execute(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position,
                event_id,
                room_id,
                event_type,
                state_key,
                sender,
                json.dumps(content),
                now_ms,
                txn_key,
            ),
        )
        if state_key is not None:
            membership = content.get("membership") if event_type == "m.room.member" else None
            changed = txn.execute(
                "UPDATE current_state SET event_id = ?, stream_ordering = ?, membership = ?"
                " WHERE room_id = ? AND type = ? AND state_key = ?",
                (event_id, position, membership, room_id, event_type, state_key),
            )
            if not changed:
                txn.execute(
                    "INSERT INTO current_state"
                    " (room_id, type, state_key, event_id, stream_ordering, membership)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (room_id, event_type, state_key, event_id, position, membership),
                )
        return Event(position, event_id, room_id, event_type, state_key, sender, content, now_ms, txn_key)

    def get_event_by_txn(self, txn_key: str) -> Event | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(f"SELECT {EVENT_COLUMNS} FROM events WHERE txn_key = ?", (txn_key,))
        return _event(row) if row else None

    def get_event(self, event_id: str) -> Event | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
        return _event(row) if row else None

    def get_membership(self, room_id: str, user_id: str, txn: Txn | None = None) -> str | None:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_membership(room_id, user_id, txn)
        row = txn.fetchone(
            "SELECT membership FROM current_state"
            " WHERE room_id = ? AND type = 'm.room.member' AND state_key = ?",
            (room_id, user_id),
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
            " WHERE s.room_id = ? AND s.type = ? AND s.state_key = ?",
            (room_id, event_type, state_key),
        )
        return _event(row) if row else None

    def get_current_state(self, room_id: str, txn: Txn | None = None) -> list[Event]:
        if txn is None:
            with self.db.transaction(write=False) as txn:
                return self.get_current_state(room_id, txn)
        rows = txn.fetchall(
            f"SELECT {_prefixed('e')} FROM current_state s JOIN events e ON e.event_id = s.event_id"
            " WHERE s.room_id = ? ORDER BY e.stream_ordering",
            (room_id,),
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
        wanted = list(memberships)
        rows = txn.fetchall(
            "SELECT room_id FROM current_state WHERE state_key = ? AND type = 'm.room.member'"
            f" AND membership IN ({_placeholders(wanted)}) ORDER BY room_id",
            (user_id, *wanted),
        )
        return [row[0] for row in rows]

    def get_user_sync_state(self, txn: Txn, user_id: str, since: int) -> UserSyncState:
        """What a sync needs of one user, in one statement (one round trip, one snapshot).

        The newest position; the rooms the user is in or invited to; the
        user's membership changes and account data after `since`. The caller
        drops whatever lies beyond the position (committed meanwhile).
        """
        rows = txn.fetchall(
            "SELECT 'p', CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),"
            " COALESCE(MAX(stream_id), 0) FROM stream_ids"
            " UNION ALL SELECT 'm', room_id, membership, NULL, 0 FROM current_state"
            " WHERE state_key = ? AND type = 'm.room.member' AND membership IN ('join', 'invite')"
            " UNION ALL SELECT 'c', room_id, content, NULL, stream_ordering FROM events"
            " WHERE state_key = ? AND type = 'm.room.member' AND stream_ordering > ?"
            " UNION ALL SELECT 'a', room_id, type, content, stream_id FROM account_data"
            " WHERE user_id = ? AND stream_id > ?",
            (user_id, user_id, since, user_id, since),
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
            f"SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND stream_ordering > ?"
            f" AND stream_ordering <= ? ORDER BY stream_ordering {order} LIMIT ?",
            (room_id, after, upto, limit),
        )
        return [_event(row) for row in rows]

    def get_room_changes(self, txn: Txn, room_id: str, since: int, upto: int, limit: int) -> RoomChanges:
        """A room's newest `limit` events in (since, upto], its typing rows and its
        receipts changed in that range: one statement, one round trip."""
        rows = txn.fetchall(
            f"SELECT * FROM (SELECT 'e', {EVENT_COLUMNS} FROM events"
            "  WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
            "  ORDER BY stream_ordering DESC LIMIT ?) AS newest"
            " UNION ALL SELECT 't', stream_id, user_id, NULL, NULL, NULL, NULL, NULL, expires_ts, NULL"
            " FROM typing WHERE room_id = ? AND stream_id <= ?"
            " UNION ALL SELECT 'r', stream_id, user_id, receipt_type, event_id, NULL, NULL, NULL, ts, NULL"
            " FROM receipts WHERE room_id = ? AND stream_id > ? AND stream_id <= ?",
            (room_id, since, upto, limit, room_id, upto, room_id, since, upto),
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
            changed = txn.execute(
                "UPDATE typing SET expires_ts = ?, stream_id = ? WHERE room_id = ? AND user_id = ?",
                (expires_ts, position, room_id, user_id),
            )
            if not changed:
                txn.execute(
                    "INSERT INTO typing (room_id, user_id, expires_ts, stream_id) VALUES (?, ?, ?, ?)",
                    (room_id, user_id, expires_ts, position),
                )
        return position

    def set_receipt(self, room_id: str, user_id: str, receipt_type: str, event_id: str, ts: int) -> int:
        with self.db.transaction() as txn:
            position = txn.next_stream_id()
            changed = txn.execute(
                "UPDATE receipts SET event_id = ?, ts = ?, stream_id = ?"
                " WHERE room_id = ? AND user_id = ? AND receipt_type = ?",
                (event_id, ts, position, room_id, user_id, receipt_type),
            )
            if not changed:
                txn.execute(
                    "INSERT INTO receipts (room_id, user_id, receipt_type, event_id, ts, stream_id)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (room_id, user_id, receipt_type, event_id, ts, position),
                )
        return position

    def set_account_data(self, user_id: str, room_id: str, data_type: str, content: JsonDict) -> int:
        with self.db.transaction() as txn:
            position = txn.next_stream_id()
            changed = txn.execute(
                "UPDATE account_data SET content = ?, stream_id = ?"
                " WHERE user_id = ? AND room_id = ? AND type = ?",
                (json.dumps(content), position, user_id, room_id, data_type),
            )
            if not changed:
                txn.execute(
                    "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (user_id, room_id, data_type, json.dumps(content), position),
                )
        return position

    def get_account_data(self, user_id: str, room_id: str, data_type: str) -> JsonDict | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
                (user_id, room_id, data_type),
            )
        return json.loads(row[0]) if row else None

    def add_filter(self, user_id: str, content: JsonDict) -> int:
        with self.db.transaction() as txn:
            row = txn.fetchone(
                "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?", (user_id,)
            )
            filter_id = int(row[0]) if row else 0
            txn.execute(
                "INSERT INTO filters (user_id, filter_id, content) VALUES (?, ?, ?)",
                (user_id, filter_id, json.dumps(content)),
            )
        return filter_id

    def get_filter(self, user_id: str, filter_id: int) -> JsonDict | None:
        with self.db.transaction(write=False) as txn:
            row = txn.fetchone(
                "SELECT content FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
            )
        return json.loads(row[0]) if row else None


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in EVENT_COLUMNS.split(","))


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

    On PostgreSQL the writers' lock is taken first (in its own statement, so
    that the read after it sees every write committed before it was granted):
    the state checked is then the state the event is written on, with no
    other writer in between. On SQLite the write transaction already holds
    the database.
    """
    if store.db.postgres:
        txn.fetchone("SELECT pg_advisory_xact_lock(?)", (_STREAM_LOCK,))
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    condition = " OR ".join("(s.type = ? AND s.state_key = ?)" for _ in wanted)
    rows = txn.fetchall(
        "SELECT s.type, s.state_key, e.content FROM current_state s JOIN events e ON e.event_id = s.event_id"
        f" WHERE s.room_id = ? AND ({condition})",
        (room_id, *(part for key in wanted for part in key)),
    )
    return {(row[0], row[1]): json.loads(row[2]) for row in rows}


def get_event_in(txn: Txn, event_id: str) -> Event | None:
    """`Store.get_event` inside a transaction already open (a write's)."""
    row = txn.fetchone(f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
    return _event(row) if row else None


def has_user(txn: Txn, user_id: str) -> bool:
    return txn.fetchone("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None


def replace_event_content(txn: Txn, event_id: str, content: JsonDict) -> None:
    """Store the redacted form of an event: only what the redaction algorithm keeps."""
    txn.execute("UPDATE events SET content = ? WHERE event_id = ?", (json.dumps(content), event_id))


def set_password_hash(store: Store, user_id: str, password_hash: str) -> None:
    """Replace a user's hash (an old PBKDF2 hash is upgraded to bcrypt at the next login)."""
    with store.db.transaction() as txn:
        txn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))
