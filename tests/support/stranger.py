"""A stranger in front of the tracker's port: the raw TLS bytes and the
connection flood that tests/integration/test_flood_memory.py and
tests/bench/tracker_flood_rss.py play, and the mutual-TLS tracker they play
it against."""

from __future__ import annotations

import dataclasses
import selectors
import socket
import ssl
import time
from pathlib import Path

import grpc

from support import certs


def client_hello() -> bytes:
    """The bytes of a TLS ClientHello, any TLS client's first flight: sent
    alone, it leaves a server waiting in the middle of its handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@dataclasses.dataclass(frozen=True)
class TrackerMtls:
    """A CA, the tracker's certificate and a client's credentials from it."""
    ca: str
    cert: str
    key: str
    client_credentials: grpc.ChannelCredentials

    def tracker_tls(self) -> dict:
        """failedPolls.tracker.tls for stack.butler_config's tracker_extra."""
        return {"tls": {"enable": True, "certFile": self.cert,
                        "keyFile": self.key, "caFile": self.ca}}


def tracker_mtls(directory: str) -> TrackerMtls:
    ca, ca_key = certs.issue_ca(directory, "ca", "Stranger test CA")
    cert, key = certs.issue_leaf(directory, "server", ca, ca_key, server=True)
    client, client_key = certs.issue_leaf(directory, "client", ca, ca_key,
                                          server=False)
    return TrackerMtls(ca, cert, key, grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(client_key).read_bytes(),
        certificate_chain=Path(client).read_bytes()))


@dataclasses.dataclass
class Flood:
    opened_s: float = 0.0      # from the first connect to the last
    all_closed_s: float = 0.0  # from the first connect to the last close
    still_open: int = 0        # when close_timeout_s ran out


def flood_until_closed(port: int, count: int, hello: bytes, *,
                       open_timeout_s: float, close_timeout_s: float,
                       connect_timeout_s: float = 10.0,
                       when_all_open=None) -> Flood:
    """Opens `count` connections to 127.0.0.1:`port`, sends `hello` on each
    (nothing if empty), calls `when_all_open()` once they are all open, and
    waits, for at most `close_timeout_s`, until the other side has closed
    every one. Raises RuntimeError when opening takes over `open_timeout_s`.
    Closes whatever is left on the way out."""
    selector = selectors.DefaultSelector()
    sockets = []
    result = Flood()
    started = time.monotonic()
    try:
        for _ in range(count):
            if time.monotonic() - started > open_timeout_s:
                raise RuntimeError(f"opened only {len(sockets)} connections "
                                   f"in {open_timeout_s:.0f} s")
            sock = socket.create_connection(("127.0.0.1", port),
                                            timeout=connect_timeout_s)
            if hello:
                sock.sendall(hello)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            sockets.append(sock)
        result.opened_s = time.monotonic() - started
        if when_all_open is not None:
            when_all_open()
        open_count = len(sockets)
        deadline = time.monotonic() + close_timeout_s
        while open_count > 0 and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # closed by the other side
                    selector.unregister(key.fileobj)
                    open_count -= 1
        result.all_closed_s = time.monotonic() - started
        result.still_open = open_count
        return result
    finally:
        for sock in sockets:
            sock.close()
        selector.close()
