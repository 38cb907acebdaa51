"""The example's storage on SQLite and PostgreSQL: parameter styles, error codes,
upserts, and ids allocated safely by concurrent writers (threads, and two
`Database` objects on one database, as two workers have)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _postgres import PostgresServer

from examples.homeserver.store import Database, Store, UniqueViolation, render


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        yield pg.create_database(f"store_{request.node.name.split('[')[0][-40:]}")


def table_rows(db: Database) -> dict[str, int]:
    """Every table's row count."""
    with db.transaction(write=False) as txn:
        if db.postgres:
            names = [
                row[0]
                for row in txn.fetchall(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ]
        else:
            names = [
                row[0]
                for row in txn.fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
        return {name: int(txn.fetchone(f"SELECT COUNT(*) FROM {name}")[0]) for name in names}  # type: ignore[index]


def test_templates_render_to_each_drivers_own_style() -> None:
    query = "SELECT '100% ?', {a} WHERE x = {b} AND y LIKE 'a%'"
    with pytest.raises(ValueError, match="positional"):
        render(query, postgres=False)
    query = "SELECT '100%', {a} WHERE x = {b} AND y LIKE 'a%' AND z = '{{}}'"
    assert render(query, postgres=False) == "SELECT '100%', :a WHERE x = :b AND y LIKE 'a%' AND z = '{}'"
    assert render(query, postgres=True) == (
        "SELECT '100%%', %(a)s WHERE x = %(b)s AND y LIKE 'a%%' AND z = '{}'"
    )
    with pytest.raises(ValueError, match="positional"):
        render("SELECT %s", postgres=True)


def test_literals_and_parameters_reach_the_database_as_written(database: str) -> None:
    db = Database(database)
    with db.transaction(write=False) as txn:
        row = txn.fetchone("SELECT 'x%y', {value}, {value} || '%'", {"value": "50% ? {no}"})
    assert row == ("x%y", "50% ? {no}", "50% ? {no}%")
    db.close()


def test_unique_violations_by_error_code_and_nothing_else(database: str) -> None:
    db = Database(database)
    store = Store(db)
    assert store.create_user("@a:x", "h", 1) is True
    assert store.create_user("@a:x", "h", 1) is False  # the primary key
    with db.transaction() as txn:
        store.create_room(txn, "!r:x", "@a:x")
        assert store.add_alias(txn, "#a:x", "!r:x") is True
        assert store.add_alias(txn, "#a:x", "!r:x") is False  # unique, inside a transaction that goes on
    with pytest.raises(UniqueViolation):  # a UNIQUE column that is not the key
        store.add_access_token("t2", 7, "@a:x", "D1")
        store.add_access_token("t3", 7, "@a:x", "D1")
    # A NOT NULL violation is an integrity error too, but not a taken key: the driver's own error.
    with pytest.raises(Exception) as caught, db.transaction() as txn:
        txn.execute(
            "INSERT INTO users (user_id, password_hash, created_ts) VALUES ({u}, NULL, 1)", {"u": "@b:x"}
        )
    assert not isinstance(caught.value, UniqueViolation)
    if not db.postgres:
        assert isinstance(caught.value, sqlite3.IntegrityError)
    else:
        assert getattr(caught.value, "sqlstate", None) == "23502"
    db.close()


def test_replaced_rows_are_updated_in_place_and_nothing_grows(database: str) -> None:
    """Typing, receipts, account data, current state and the stream position: one row each,
    however often they change (the stream-id table used to gain a row per position)."""
    db = Database(database)
    store = Store(db)
    store.create_user("@a:x", "h", 1)
    with db.transaction() as txn:
        store.create_room(txn, "!r:x", "@a:x")
        event = store.persist_event(txn, "$1", "!r:x", "m.room.topic", "", "@a:x", {"topic": "a"}, 1)
    positions = [store.set_typing("!r:x", "@a:x", 1000)]
    before = table_rows(db)
    for round_ in range(20):
        positions.append(store.set_typing("!r:x", "@a:x", 1000 + round_))
        positions.append(store.set_receipt("!r:x", "@a:x", "m.read", event.event_id, round_))
        positions.append(store.set_account_data("@a:x", "", "x.y", {"n": round_}))
    after = table_rows(db)
    grown = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    assert grown == {"receipts": 1, "account_data": 1}
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert store.current_position() == positions[-1]
    assert store.get_account_data("@a:x", "", "x.y") == {"n": 19}
    with db.transaction(write=False) as txn:
        changes = store.get_room_changes(txn, "!r:x", 0, positions[-1], 10)
    assert changes.typing == [("@a:x", 1019, positions[-3])]
    assert [receipt[3] for receipt in changes.receipts] == [19]
    db.close()


def test_ids_are_unique_under_concurrent_writers(database: str) -> None:
    """Eight threads over two `Database` objects (two workers' pools) allocate stream
    positions and filter ids at once: no id twice, no failure, positions dense."""
    dbs = [Database(database), Database(database)]
    stores = [Store(db) for db in dbs]
    stores[0].create_user("@a:x", "h", 1)
    with dbs[0].transaction() as txn:
        stores[0].create_room(txn, "!r:x", "@a:x")
    start = stores[0].current_position()
    per_thread, threads = 25, 8
    positions: list[int] = []
    filters: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        store = stores[index % 2]
        mine: list[int] = []
        my_filters: list[int] = []
        try:
            barrier.wait()
            for n in range(per_thread):
                mine.append(store.set_typing("!r:x", f"@u{index}:x", n))
                my_filters.append(store.add_filter("@a:x", {"n": n}))
        except BaseException as exc:
            errors.append(exc)
        with lock:
            positions.extend(mine)
            filters.extend(my_filters)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert errors == []
    total = per_thread * threads
    assert sorted(positions) == list(range(start + 1, start + total + 1))
    assert len(set(filters)) == total
    assert all(stores[1].get_filter("@a:x", filter_id) is not None for filter_id in filters)
    assert stores[1].current_position() == start + total
    for db in dbs:
        db.close()


def test_a_reader_never_sees_a_position_before_its_write(database: str) -> None:
    """While writers run, every position a reader sees is readable with everything below it."""
    db, reader_db = Database(database), Database(database)
    store, reader = Store(db), Store(reader_db)
    store.create_user("@a:x", "h", 1)
    with db.transaction() as txn:
        store.create_room(txn, "!r:x", "@a:x")
    stop = threading.Event()
    problems: list[Any] = []

    def write() -> None:
        for n in range(100):
            with db.transaction() as txn:
                store.persist_event(txn, f"$e{n}", "!r:x", "m.room.message", None, "@a:x", {"n": n}, n)

    def read() -> None:
        while not stop.is_set():
            with reader_db.transaction(write=False) as txn:
                position = reader.current_position(txn)
                events = reader.get_room_events(txn, "!r:x", 0, position, 1000, newest_first=False)
            numbers = [event.content["n"] for event in events]
            if numbers != list(range(len(numbers))) or (events and events[-1].stream_ordering != position):
                problems.append((position, numbers[-3:]))

    writers = [threading.Thread(target=write)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    writers[0].join(60)
    stop.set()
    for thread in readers:
        thread.join(10)
    assert problems == []
    db.close()
    reader_db.close()


def test_a_worker_opening_the_database_while_another_writes(database: str) -> None:
    """A worker that starts while another writes must not deadlock with it.

    (On PostgreSQL, re-running the schema's ``CREATE INDEX IF NOT EXISTS`` took a
    SHARE lock on `events` that the writer's insert waited for, while the
    opener's seed row waited for the writer's position row: "deadlock detected".)
    """
    db = Database(database)
    store = Store(db)
    store.create_user("@a:x", "h", 1)
    with db.transaction() as txn:
        store.create_room(txn, "!r:x", "@a:x")
    opened: list[BaseException | None] = []

    def open_again() -> None:
        try:
            Database(database).close()
            opened.append(None)
        except BaseException as exc:
            opened.append(exc)

    with db.transaction() as txn:
        txn.next_stream_id()  # this writer holds the position row
        opener = threading.Thread(target=open_again)
        opener.start()
        time.sleep(0.5)  # the opener is in its schema step now
        store.persist_event(txn, "$e", "!r:x", "m.room.message", None, "@a:x", {"n": 1}, 1)
    opener.join(15)
    assert opened == [None]
    assert store.get_event("$e") is not None
    db.close()


def test_a_connection_left_mid_query_is_not_reused(postgres: PostgresServer) -> None:
    """A request killed while its query runs (a client gone: the greenlet is killed in
    psycopg's wait) leaves its connection busy; the pool must not hand it out again
    ("another command is already in progress" on the next request, seen under matrix-js-sdk)."""
    db = Database(postgres.create_database("store_killed_mid_query"), pool_size=1)
    store = Store(db)
    for write in (False, True):
        with pytest.raises(KeyboardInterrupt), db.transaction(write=write) as txn:
            txn.fetchone("SELECT 1")
            txn._cursor.connection.pgconn.send_query(b"SELECT pg_sleep(0.2)")  # in flight...
            raise KeyboardInterrupt  # ... when the handler is killed
        assert store.create_user(f"@after{write}:x", "h", 1) is True
        assert store.user_exists(f"@after{write}:x")
    db.close()
