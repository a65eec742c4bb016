"""A fake Qlik Sense site of many servers, for the poller at scale.

tests/support/fake_qlik.py runs a thread per port and per connection, which
is right for a few endpoints with many behaviours; thousands of servers need
one event loop. This site serves ``--healthy`` HTTPS ports that answer
``GET /engine/healthcheck`` as Qlik's engine does (the JSON of
``support.fake_qlik.healthcheck_payload``; anything else is a 404) and holds
``--dead`` black-holed ports that listen but never accept (connect may
succeed, TLS never starts: the poll ends in its timeout), all on 127.0.0.1,
in ``--workers`` processes (2) of one asyncio loop each, which share the
ports. Like fake_qlik it requires a client certificate from
the PKI's root, with the PKI's server certificate (localhost, 127.0.0.1).

Every request that reaches HTTP is recorded as a JSON line
``{"port": P, "time": UNIX_SECONDS, "path": PATH}`` (``time`` when its head
arrived, after the TLS handshake) in ``--record``.

Command line (from ``tests/``; ``ulimit -n`` must exceed the port count plus
the connections in flight)::

    /usr/bin/python3 -m bench.poller_scale_site --pki DIR --healthy N \\
        --dead M --ready-file F [--record R.jsonl] [--max-seconds S]

writes ``{"healthy": [ports], "dead": [ports], "pid": PID, "workers":
[PIDS]}`` to F once every port listens and stops on SIGTERM or SIGINT (or
after ``--max-seconds``), its workers with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import sys
import time

from support.certs import ensure_pki
from support.fake_qlik import healthcheck_payload

LOOPBACK = "127.0.0.1"
MAX_HEAD_BYTES = 16 * 1024
# A black hole's accept queue: kept short, so that once it is full new SYNs
# are dropped too (the client then never even connects).
DEAD_BACKLOG = 4
HEALTHY_BACKLOG = 256


def _response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class _Healthcheck(asyncio.Protocol):
    """One connection: read the request head, answer, close (close_notify)."""

    def __init__(self, site: "_Site", port: int):
        self._site = site
        self._port = port
        self._buffer = b""
        self._transport = None

    def connection_made(self, transport):
        self._transport = transport

    def data_received(self, data: bytes):
        if self._transport is None or self._transport.is_closing():
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._transport.abort()
            return
        line = self._buffer[:self._buffer.find(b"\r\n")].decode(
            "latin-1").split(" ")
        path = line[1].split("?", 1)[0] if len(line) >= 2 else ""
        self._site.record(self._port, path)
        if line[0] == "GET" and path == "/engine/healthcheck":
            self._transport.write(self._site.healthy_answer)
        else:
            self._transport.write(self._site.not_found)
        self._transport.close()


class _Site:
    def __init__(self, pki_dir: str, healthy: int, dead: int,
                 record_path: str | None):
        pki = ensure_pki(pki_dir)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(cafile=pki.root_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.healthy_answer = _response(
            200, json.dumps(healthcheck_payload()).encode())
        self.not_found = _response(404, b'{"error":"not found"}')
        self.healthy_count = healthy
        self.dead_count = dead
        # O_APPEND and one write per line: workers share the file.
        self.record_fd = (os.open(record_path,
                                  os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                  0o644) if record_path else None)
        self.healthy_ports: list[int] = []
        self.dead_ports: list[int] = []
        self._healthy_socks: list[socket.socket] = []
        self._dead_socks: list[socket.socket] = []
        self._servers = []

    def record(self, port: int, path: str) -> None:
        if self.record_fd is not None:
            os.write(self.record_fd, (json.dumps(
                {"port": port, "time": round(time.time(), 6), "path": path})
                + "\n").encode())

    def bind(self) -> None:
        """Binds every port (before the workers fork)."""
        for _ in range(self.healthy_count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, 0))
            sock.listen(HEALTHY_BACKLOG)
            self._healthy_socks.append(sock)
            self.healthy_ports.append(sock.getsockname()[1])
        for _ in range(self.dead_count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sock.listen(DEAD_BACKLOG)  # and never accepted
            self._dead_socks.append(sock)
            self.dead_ports.append(sock.getsockname()[1])

    async def serve(self, worker: int, workers: int) -> None:
        """Serves this worker's share of the healthy ports."""
        loop = asyncio.get_running_loop()
        for i, sock in enumerate(self._healthy_socks):
            if i % workers != worker:
                sock.close()  # another worker's
                continue
            port = self.healthy_ports[i]
            server = await loop.create_server(
                lambda port=port: _Healthcheck(self, port), sock=sock,
                ssl=self.context, backlog=HEALTHY_BACKLOG,
                ssl_handshake_timeout=30)
            self._servers.append(server)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for sock in self._dead_socks:
            sock.close()
        if self.record_fd is not None:
            os.close(self.record_fd)


async def _serve(site: _Site, worker: int, workers: int,
                 max_seconds: float) -> int:
    await site.serve(worker, workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        pass
    site.close()
    return 0


def _run(args) -> int:
    site = _Site(args.pki, args.healthy, args.dead, args.record)
    site.bind()
    children = []
    for worker in range(1, args.workers):
        pid = os.fork()
        if pid == 0:
            os._exit(asyncio.run(_serve(site, worker, args.workers,
                                        args.max_seconds)))
        children.append(pid)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"healthy": site.healthy_ports, "dead": site.dead_ports,
                   "pid": os.getpid(), "workers": children}, f)
    os.replace(tmp, args.ready_file)
    try:
        return asyncio.run(_serve(site, 0, args.workers, args.max_seconds))
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            os.waitpid(pid, 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pki", required=True)
    parser.add_argument("--healthy", type=int, required=True)
    parser.add_argument("--dead", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--record")
    parser.add_argument("--max-seconds", type=float, default=3600)
    parser.add_argument("--workers", type=int, default=2,
                        help="processes serving the healthy ports (each a "
                        "share), so that the site's TLS is not the limit")
    args = parser.parse_args(argv)
    needed = args.healthy + args.dead + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            print(f"poller_scale_site: needs {needed} file descriptors, the "
                  f"hard limit is {hard}", file=sys.stderr)
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
