# ruff: noqa: S608 - the only names formatted in are the keyspace and table, both
# checked against [A-Za-z][A-Za-z0-9_]* by _options; every value is a bind marker.
"""Every CQL statement of the backend, built from the keyspace and table names.

The schema itself is ``cql/schema.cql`` (package data), also what an operator
runs by hand when ``create_schema`` is off. Statements that write carry
``USING TTL ?`` (0 = no expiry, which also clears an earlier TTL).
"""

from __future__ import annotations

import re
from importlib import resources

#: Ids per ``IN`` list of a read or forget; the lists of one call go concurrently.
#: Small enough that one request stays cheap for the coordinator on a big cluster.
IDS_PER_READ = 100
#: How long ``incr`` remembers the token of an increment (see cql/schema.cql).
INCR_TOKEN_TTL_S = 600


def schema_statements(keyspace: str, table: str, replication: str) -> list[str]:
    """The statements of cql/schema.cql, placeholders filled, comments dropped."""
    text = (resources.files("petiole_cassandra") / "cql" / "schema.cql").read_text()
    text = re.sub(r"--[^\n]*", "", text)
    text = text.replace("{keyspace}", keyspace).replace("{table}", table)
    text = text.replace("{replication}", replication)
    return [" ".join(part.split()) + ";" for part in text.split(";") if part.strip()]


class Statements:
    """The CQL text of each operation on one keyspace and table family."""

    def __init__(self, keyspace: str, table: str) -> None:
        self.keyspace = keyspace
        self.results = f"{keyspace}.{table}"
        self.sets = f"{keyspace}.{table}_sets"
        self.counters = f"{keyspace}.{table}_counters"
        self.claims = f"{keyspace}.{table}_claims"
        self.leases = f"{keyspace}.{table}_leases"
        self.table_names = (
            table,
            f"{table}_sets",
            f"{table}_counters",
            f"{table}_claims",
            f"{table}_leases",
        )

    # -- results ---------------------------------------------------------------

    @property
    def store(self) -> str:
        # Every column is written (None as null), so a stored record replaces the
        # earlier one whole, and storing it twice leaves the same row.
        return (
            f"INSERT INTO {self.results} "
            "(task_id, state, payload, content_type, traceback, date_done, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?"
        )

    @property
    def get(self) -> str:
        # Bound to a list of up to IDS_PER_READ ids: one request reads them all.
        return (
            "SELECT task_id, state, payload, content_type, traceback, date_done, meta "
            f"FROM {self.results} WHERE task_id IN ?"
        )

    @property
    def forget(self) -> str:
        return f"DELETE FROM {self.results} WHERE task_id IN ?"

    # -- sets ----------------------------------------------------------------------

    @property
    def set_size(self) -> str:
        return f"SELECT size FROM {self.sets} WHERE key = ? LIMIT 1"

    @property
    def set_add(self) -> str:
        # One lightweight transaction on the set's partition: the new member's row
        # (only if absent) and the size (only if still what we read).
        # Parameters: ttl, new size, key, expected size, key, member, ttl.
        return (
            "BEGIN BATCH "
            f"UPDATE {self.sets} USING TTL ? SET size = ? WHERE key = ? IF size = ? "
            f"INSERT INTO {self.sets} (key, member) VALUES (?, ?) IF NOT EXISTS USING TTL ? "
            "APPLY BATCH"
        )

    @property
    def delete_set(self) -> str:
        return f"DELETE FROM {self.sets} WHERE key = ?"

    # -- counters ----------------------------------------------------------------

    @property
    def counter_value(self) -> str:
        return f"SELECT value FROM {self.counters} WHERE key = ?"

    @property
    def counter_token(self) -> str:
        return f"SELECT applied[?] FROM {self.counters} WHERE key = ?"

    @property
    def incr(self) -> str:
        # Parameters: ttl, new value, key, expected value, token, new value, key.
        return (
            "BEGIN BATCH "
            f"UPDATE {self.counters} USING TTL ? SET value = ? WHERE key = ? IF value = ? "
            f"UPDATE {self.counters} USING TTL {INCR_TOKEN_TTL_S} SET applied[?] = ? "
            "WHERE key = ? "
            "APPLY BATCH"
        )

    @property
    def delete_counter(self) -> str:
        return f"DELETE FROM {self.counters} WHERE key = ?"

    # -- claims --------------------------------------------------------------------

    @property
    def claim(self) -> str:
        return f"INSERT INTO {self.claims} (key, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?"

    @property
    def delete_claim(self) -> str:
        return f"DELETE FROM {self.claims} WHERE key = ?"

    # -- marks (rows of the claims table, written without a condition) ---------

    @property
    def put_mark(self) -> str:
        return f"INSERT INTO {self.claims} (key, owner) VALUES (?, ?) USING TTL ?"

    @property
    def get_marks(self) -> str:
        # Bound to a list of up to IDS_PER_READ keys.
        return f"SELECT key, owner FROM {self.claims} WHERE key IN ?"

    # -- leases --------------------------------------------------------------------

    @property
    def lease_take(self) -> str:
        # Parameters: name, owner, ttl.
        return f"INSERT INTO {self.leases} (name, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?"

    @property
    def lease_renew(self) -> str:
        # Parameters: ttl, owner, name, owner.
        return f"UPDATE {self.leases} USING TTL ? SET owner = ? WHERE name = ? IF owner = ?"

    @property
    def lease_release(self) -> str:
        # Parameters: name, owner.
        return f"DELETE FROM {self.leases} WHERE name = ? IF owner = ?"
