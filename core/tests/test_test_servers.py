"""The test-server helpers' port choice (petiole.testing.servers)."""

from __future__ import annotations

import socket

from petiole.testing import servers


def test_a_free_port_is_one_the_kernel_would_not_give_a_client() -> None:
    """Below the ephemeral range: a client retrying a connection to a stopped
    server is never handed the server's port as its own (a self-connect that
    would keep the restarted server from listening)."""
    low = servers._ephemeral_low()
    ports = {servers.free_port() for _ in range(20)}
    assert all(servers._LOWEST_PORT <= port < low for port in ports)
    assert len(ports) > 1  # drawn at random, not one fixed port
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free: a server can listen there
