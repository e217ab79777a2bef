"""URL forms, options, and the errors a user can cause at start-up."""

from __future__ import annotations

import pytest
from petiole_cassandra._options import mask_url, parse_url
from petiole_cassandra.results import SchemaMissing, create_backend
from petiole_cassandra.testing import CassandraNode

from petiole.errors import ConfigError, ResultBackendError, SettingTypeError, UnknownSettingError
from petiole.testing import unique_name
from petiole.testing.servers import free_port

COMPONENT = "cassandra result backend"


def test_url_with_several_hosts_credentials_and_keyspace_is_parsed() -> None:
    target = parse_url(
        "cassandra://app:p%40ss@10.0.0.1:9043,10.0.0.2,[::1]:9044/Results?table=runs",
        {},
        component=COMPONENT,
    )

    assert target.hosts == (("10.0.0.1", 9043), ("10.0.0.2", 9042), ("::1", 9044))
    assert (target.username, target.password) == ("app", "p@ss")
    assert target.keyspace == "results"
    assert target.options.table == "runs"
    assert (
        target.masked_url
        == "cassandra://app:***@10.0.0.1:9043,10.0.0.2,[::1]:9044/Results?table=runs"
    )


def test_defaults_are_local_quorum_a_created_schema_and_the_default_keyspace() -> None:
    target = parse_url("cassandra://db1", {}, component=COMPONENT)

    assert target.keyspace == "petiole"
    assert target.options.read_consistency == target.options.write_consistency == "LOCAL_QUORUM"
    assert target.options.serial_consistency == "LOCAL_SERIAL"
    assert target.options.create_schema is True
    assert target.options.result_ttl_s is None
    assert target.replication_cql() == "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def test_url_query_overrides_the_options_table() -> None:
    target = parse_url(
        "cassandra://db1/ks?read_consistency=quorum&result_ttl_s=0&create_schema=false"
        "&replication=dc1:3,dc2:2&local_dc=dc1&protocol_version=4",
        {"read_consistency": "ONE", "result_ttl_s": 60},
        component=COMPONENT,
    )

    opts = target.options
    assert opts.read_consistency == "QUORUM"
    assert opts.result_ttl_s == 0.0
    assert opts.create_schema is False
    assert (opts.local_dc, opts.protocol_version) == ("dc1", 4)
    assert target.replication_cql() == ("{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}")


def test_unknown_option_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownSettingError) as info:
        parse_url("cassandra://db1/ks?read_consistancy=ONE", {}, component=COMPONENT)

    assert "did you mean 'read_consistency'" in str(info.value)
    assert "write_consistency" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("read_consistency", "MOSTLY"),
        ("serial_consistency", "QUORUM"),
        ("replication", "three"),
        ("protocol_version", "2"),
        ("table", "bad-name"),
        ("wait_poll_max_s", "0"),
        ("create_schema", "maybe"),
    ],
)
def test_bad_option_value_names_the_expected_type(key: str, value: str) -> None:
    with pytest.raises(SettingTypeError, match=key):
        parse_url(f"cassandra://db1/ks?{key}={value}", {}, component=COMPONENT)


def test_url_of_another_scheme_or_without_hosts_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a cassandra://"):
        parse_url("redis://db1/0", {}, component=COMPONENT)
    with pytest.raises(ConfigError, match="names no host"):
        parse_url("cassandra:///ks", {}, component=COMPONENT)


def test_password_is_masked_in_every_url_form() -> None:
    assert mask_url("cassandra://u:secret@h1,h2:9043/ks") == "cassandra://u:***@h1,h2:9043/ks"
    assert mask_url("cassandra://h1/ks") == "cassandra://h1/ks"


def test_unreachable_cluster_at_startup_names_every_host_with_the_password_masked() -> None:
    ports = free_port(), free_port()
    url = f"cassandra://app:hunter2@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/ks"

    with pytest.raises(ResultBackendError) as info:
        create_backend(url, {"startup_timeout_s": 0.2})

    message = str(info.value)
    assert "hunter2" not in message
    assert f"cassandra://app:***@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/ks" in message
    assert f"hosts: 127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}" in message


def test_missing_table_without_create_schema_fails_at_startup_printing_the_cql(
    cassandra: CassandraNode,
) -> None:
    keyspace = unique_name("ks").replace("-", "_")[:40]
    url = cassandra.url(keyspace, create_schema=False, replication=1)

    with pytest.raises(SchemaMissing) as info:
        create_backend(url, {})

    message = str(info.value)
    assert f"keyspace {keyspace!r}" in message
    assert f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication" in message
    assert f"CREATE TABLE IF NOT EXISTS {keyspace}.petiole_results (" in message
    assert "create_schema=true" in message


def test_missing_table_in_an_existing_keyspace_is_named(cassandra: CassandraNode) -> None:
    create_backend(cassandra.url("petiole_test"), {}).close()  # the keyspace exists
    table = unique_name("t").replace("-", "_")[:30]

    with pytest.raises(SchemaMissing, match=f"petiole_test.{table}_claims"):
        create_backend(cassandra.url("petiole_test", table=table, create_schema=False), {})


def test_create_schema_makes_keyspace_and_tables_with_the_replication_given(
    cassandra: CassandraNode,
) -> None:
    keyspace = unique_name("ks").replace("-", "_")[:40]
    backend = create_backend(cassandra.url(keyspace, table="jobs", replication=1), {})
    try:
        assert backend.set_add("k", "m", ttl_s=10) == 1
    finally:
        backend.close()
    again = create_backend(cassandra.url(keyspace, table="jobs", create_schema=False), {})
    again.close()
