"""The lab internet (tests/lab/README.md, "The data plane"): run inside the lab's internet
network namespace by dataplane.py, never in the host's.

- DNS on UDP port 53 of --dns-ip: an A record for every lab host (one address each, on this
  namespace's eth0), NOERROR without records for other types of those names, NXDOMAIN for
  every other name.
- An echo server on every lab host address: plain HTTP on port 80, HTTPS on 443 and 8443 with a
  certificate for the host (SNI) from the lab CA; it asks for (but does not require) a client
  certificate. It answers every request with 200 and a JSON body of what it saw: method, path,
  Host, SNI, TLS or not, the caller's address, the headers, the client certificate's subject.
  `/status/NNN` answers with status NNN instead.
- The blackhole host's address accepts TCP connections on every port and never replies.

Standard library only: the lab runs this with the machine's python3.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time

TLS_PORTS = (443, 8443)
PLAIN_PORTS = (80,)


class Internet:
    def __init__(self, hosts: dict[str, str], pki: str, blackhole: str, log: str):
        self.hosts = hosts  # name -> address
        self.by_ip = {ip: name for name, ip in hosts.items()}
        self.blackhole_ip = hosts.get(blackhole, "")
        self.log_lock = threading.Lock()
        self.log = open(log, "a", encoding="utf-8", buffering=1)  # pylint: disable=consider-using-with
        ca = os.path.join(pki, "ca.crt")
        self.contexts = {}
        for name in hosts:
            crt, key = os.path.join(pki, f"{name}.crt"), os.path.join(pki, f"{name}.key")
            if os.path.exists(crt):
                self.contexts[name] = self._context(crt, key, ca)
        self.default_context = self._context(os.path.join(pki, "default.crt"), os.path.join(pki, "default.key"), ca)
        self.default_context.sni_callback = self._sni

    @staticmethod
    def _context(crt: str, key: str, ca: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _sni(self, sock, server_name, _ctx):
        sock.lab_sni = server_name
        if server_name and server_name.lower() in self.contexts:
            sock.context = self.contexts[server_name.lower()]

    def record(self, entry: dict) -> None:
        with self.log_lock:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "meshguard-lab-echo"
    sys_version = ""

    def setup(self):
        net: Internet = self.server.internet
        self.request.settimeout(30)
        local = self.request.getsockname()
        self.lab_local = local
        self.lab_tls = False
        self.lab_sni = None
        self.lab_client_cert = None
        if local[0] == net.blackhole_ip:
            # accept, read and discard until the caller gives up; never answer
            end = time.monotonic() + 300
            try:
                while time.monotonic() < end and self.request.recv(65536):
                    pass
            except OSError:
                pass
            raise ConnectionAbortedError("blackhole")
        if local[1] in TLS_PORTS:
            self.request = net.default_context.wrap_socket(self.request, server_side=True)
            self.lab_tls = True
            self.lab_sni = getattr(self.request, "lab_sni", None)
            cert = self.request.getpeercert()
            if cert:
                self.lab_client_cert = {
                    "subject": [list(x) for rdn in cert.get("subject", ()) for x in rdn],
                    "subjectAltName": [list(x) for x in cert.get("subjectAltName", ())],
                }
        super().setup()

    def _reply(self):
        net: Internet = self.server.internet
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "sni": self.lab_sni,
            "tls": self.lab_tls,
            "client": self.client_address[0],
            "client_port": self.client_address[1],
            "server": self.lab_local[0],
            "server_port": self.lab_local[1],
            "server_name": net.by_ip.get(self.lab_local[0]),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "client_cert": self.lab_client_cert,
            "body_bytes": len(body_in),
        }
        net.record({"time": time.time(), **seen})
        status = 200
        parts = self.path.split("?")[0].split("/")
        if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
            status = int(parts[2])
        data = (json.dumps(seen, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _reply

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def dns_answer(query: bytes, hosts: dict[str, str]) -> bytes | None:
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    pos, labels = 12, []
    while pos < len(query):
        n = query[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > len(query):
            return None
        labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 4 > len(query):
        return None
    qtype, _qclass = struct.unpack("!HH", query[pos:pos + 4])
    question = query[12:pos + 4]
    name = ".".join(labels).lower()
    rd = flags & 0x0100
    answers = b""
    if name in hosts:
        rcode, ancount = 0, 0
        if qtype in (1, 255):  # A, ANY
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(hosts[name])
            ancount = 1
    else:
        rcode, ancount = 3, 0  # NXDOMAIN
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, ancount, 0, 0)
    return header + question + answers


def serve_dns(sock: socket.socket, hosts: dict[str, str]) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            reply = dns_answer(data, hosts)
        except (ValueError, struct.error):
            reply = None
        if reply:
            sock.sendto(reply, peer)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--hosts", required=True, help="file of 'name address' lines")
    ap.add_argument("--pki", required=True, help="directory with ca.crt, default.crt/key, <host>.crt/key")
    ap.add_argument("--dns-ip", required=True)
    ap.add_argument("--blackhole", required=True, help="the host that accepts and never replies")
    ap.add_argument("--log", required=True, help="one JSON line per request")
    ap.add_argument("--ready", required=True, help="file written once every socket listens")
    args = ap.parse_args()
    hosts = {}
    with open(args.hosts, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, ip = line.split()
                hosts[name.lower()] = ip
    net = Internet(hosts, args.pki, args.blackhole, args.log)
    for port in PLAIN_PORTS + TLS_PORTS:
        srv = Server(("0.0.0.0", port), EchoHandler)
        srv.internet = net
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((args.dns_ip, 53))
    threading.Thread(target=serve_dns, args=(dns, hosts), daemon=True).start()
    with open(args.ready, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
