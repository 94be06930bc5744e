# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's TCP relay (tests/lab/scripts/relay.py, shared by the data plane and the lab
tests), on loopback only: bytes go both ways unchanged, a closed connection is forgotten,
cut() ends every connection and the listener, start() listens again on the same port."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import importlib.util
import os
import socket
import threading
import time

import pytest

RELAY_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lab", "scripts", "relay.py")
LOOPBACK = "127.0.0.1"


def _load_relay():
    spec = importlib.util.spec_from_file_location("lab_relay", RELAY_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


relay_mod = _load_relay()


class EchoServer:
    """Sends back what it receives, one thread per connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.address = self.sock.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            except OSError:
                return

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def relay(echo):
    made = []

    def new_socket():
        made.append(1)
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    instance = relay_mod.Relay(echo.address, LOOPBACK, 0, new_socket=new_socket).start()
    instance.sockets_made = made
    yield instance
    instance.cut()


def connect(port):
    return socket.create_connection((LOOPBACK, port), timeout=10)


def round_trip(conn, payload):
    """Send payload (from a thread, so that a large one cannot fill both buffers) and read back
    as many bytes."""
    sender = threading.Thread(target=conn.sendall, args=(payload,))
    sender.start()
    got = bytearray()
    while len(got) < len(payload):
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    sender.join()
    return bytes(got)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_bytes_go_both_ways_unchanged(relay, echo):
    assert relay.port != 0 and relay.port != echo.address[1]
    assert relay.sockets_made == [1]  # the listener came from new_socket
    payload = bytes(range(256)) * 8192  # 2 MiB, every byte value
    with connect(relay.port) as conn:
        assert round_trip(conn, payload) == payload
        assert round_trip(conn, b"again") == b"again"
        assert relay.open_connections() == 1


def test_a_closed_connection_is_forgotten(relay):
    first, second = connect(relay.port), connect(relay.port)
    assert round_trip(first, b"one") == b"one" and round_trip(second, b"two") == b"two"
    assert relay.open_connections() == 2
    first.close()
    assert wait_for(lambda: relay.open_connections() == 1), relay.open_connections()
    assert round_trip(second, b"still") == b"still"
    second.close()
    assert wait_for(lambda: relay.open_connections() == 0), relay.open_connections()


def test_cut_ends_every_connection_and_start_listens_again_on_the_same_port(relay):
    port = relay.port
    conns = [connect(port) for dummy in range(3)]
    for conn in conns:
        assert round_trip(conn, b"x") == b"x"
    relay.cut()
    for conn in conns:
        try:
            assert conn.recv(10) == b""  # the relay closed it
        except ConnectionResetError:
            pass
        conn.close()
    assert relay.open_connections() == 0
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()

    relay.start(retry_for=10)
    assert relay.port == port
    assert relay.sockets_made == [1, 1]
    with connect(port) as conn:
        assert round_trip(conn, b"back") == b"back"


def test_a_target_that_does_not_answer_closes_the_client():
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    closed_port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    instance = relay_mod.Relay((LOOPBACK, closed_port)).start()
    try:
        with connect(instance.port) as conn:
            try:
                assert conn.recv(10) == b""
            except ConnectionResetError:
                pass
        assert instance.open_connections() == 0
    finally:
        instance.cut()


def test_start_on_a_busy_port_gives_up_after_retry_for(relay, echo):
    other = relay_mod.Relay(echo.address, LOOPBACK, relay.port)
    started = time.monotonic()
    with pytest.raises(OSError):
        other.start(retry_for=0.5)
    assert time.monotonic() - started >= 0.5
