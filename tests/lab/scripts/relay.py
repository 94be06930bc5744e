"""A TCP relay for the lab, the one both of its users share: the data plane (dataplane.py
brings the host's loopback istiod into each pod's network namespace through one) and the lab
tests (test_apply.py puts one in front of the API server and cuts it in the middle of a
converge).

What it does: listen on an address, connect each accepted connection to a target address and
copy bytes both ways until either side closes; `cut()` closes the listener and every open
connection at once, `start()` listens again (on the same port). What it is not: a proxy that
reads what it carries (no TLS, no HTTP), nor anything that picks a namespace: a caller that
needs the listener in another network namespace passes `new_socket` (dataplane.py's
`socket_in`).

Proven on loopback by tests/unit/test_lab_relay.py. Standard library only: lab.sh runs
dataplane.py with the machine's python3.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 65536


class Relay:
    """Listens on (listen_host, listen_port) once started; port 0 picks a free port, which
    `port` then holds, so that a restart after `cut()` listens on the same one.

    target: (host, port) that each accepted connection is relayed to.
    new_socket: makes the listening socket (default: a plain IPv4 TCP socket).
    connect_timeout: seconds to wait for the target; a client whose target does not answer
    is closed.
    """

    def __init__(self, target: tuple[str, int], listen_host: str = "127.0.0.1", listen_port: int = 0,
                 new_socket=None, connect_timeout: float = 5.0, backlog: int = 64):
        self.target = target
        self.listen_host = listen_host
        self.port = listen_port
        self.new_socket = new_socket or (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.connect_timeout = connect_timeout
        self.backlog = backlog
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.sock: socket.socket | None = None
        self.down = True

    def start(self, retry_for: float = 0.0) -> Relay:
        """Listen and relay. retry_for: seconds to go on trying while the port is still busy
        (a port given up by `cut()` can stay busy for a moment while its sockets close)."""
        deadline = time.monotonic() + retry_for
        while True:
            sock = self.new_socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.listen_host, self.port))
                break
            except OSError:
                sock.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        sock.listen(self.backlog)
        self.port = sock.getsockname()[1]
        with self.lock:
            self.sock = sock
            self.down = False
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Stop listening and close every connection relayed so far, both of its sides."""
        with self.lock:
            self.down = True
            sock, self.sock = self.sock, None
            conns, self.conns = self.conns, []
        if sock is not None:
            _close(sock)  # shutdown first: it wakes the thread blocked in accept()
        for conn in conns:
            _close(conn)

    def open_connections(self) -> int:
        """How many relayed connections are open (two sockets each: client and target)."""
        with self.lock:
            return len(self.conns) // 2

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                client = sock.accept()[0]
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.down:  # accepted while being cut
                    for s in (client, upstream):
                        s.close()
                    continue
                self.conns += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy both ways; when either side ends, end both, close them and forget them."""
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        with self.lock:
            self.conns = [s for s in self.conns if s is not client and s is not upstream]
        for s in (client, upstream):
            s.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
