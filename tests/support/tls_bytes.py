"""Raw TLS bytes for tests that play a stranger (hostile peers, floods)."""

from __future__ import annotations

import ssl


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
