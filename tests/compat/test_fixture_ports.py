"""The broker fixture itself: a broker counts as started only when its own process listens on its
port, and a first start whose free port another process took is retried on a new one (the race
free_port() leaves open between parallel tests); a restart keeps the port its clients know."""

from __future__ import annotations

import socket

from conftest import Broker, BrokerPool, fail_if_any, listens_on


def test_a_broker_whose_port_is_taken_starts_on_another_and_restarts_on_it(ringtail_bin, tmp_path, request):
    # Another process listens on the port before our broker binds it: a connect would succeed (to
    # the other listener), yet our broker exited. The fixture must notice and move to a new port.
    pool = BrokerPool(request)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = squatter.getsockname()[1]
            data_dir = tmp_path / "data"
            data_dir.mkdir()
            broker = pool.start(Broker(ringtail_bin, data_dir, tmp_path / "ringtail.log", [], taken))
            assert broker.port != taken, "the broker was taken for started on a port it does not hold"
            assert "is in use by another process" in broker.log_tail(200), "the first attempt lost the port"
            assert listens_on(broker.proc.pid, broker.port)
        port = broker.port
        broker.restart()
        assert broker.port == port, "a restart keeps the port its clients bootstrap from"
        assert listens_on(broker.proc.pid, broker.port)
    finally:
        fail_if_any(pool.stop_all())


def test_free_ports_are_below_the_kernels_ephemeral_range():
    # Clients' source ports come from the ephemeral range: a broker restarting on a port from it
    # could find a connection of a test beside it holding the port (seen in CI).
    from conftest import LOWEST_TEST_PORT, ephemeral_ports_start, free_port
    top = ephemeral_ports_start()
    assert top > LOWEST_TEST_PORT + 1000, f"this machine's ephemeral range starts at {top}"
    ports = [free_port() for _ in range(50)]
    assert all(LOWEST_TEST_PORT <= port < top for port in ports), ports
