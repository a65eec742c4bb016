"""A fake Qlik Sense site for integration tests and the demo.

Each *endpoint* of a scenario is one port on 127.0.0.1 that serves every Qlik
path the pollers use, with a chosen way of behaving (or misbehaving):

=====================  =======================================================
path                   healthy answer
=====================  =======================================================
/engine/healthcheck    200, JSON object (version, started, mem, cpu, session,
                       apps, users, cache, saturated)
/qps/session           200, JSON array of sessions (UserDirectory, UserId,
/qps/{vp}/session      SessionId, Attributes)
/qrs/app               200, JSON array of apps (id, name, publishTime,
                       stream...)
anything else          404
=====================  =======================================================

Scenario (a dict, or a JSON file for the command line)::

    {"endpoints": [
        {"name": "healthy", "port": 0, "behaviour": "healthy",
         "paths": {"/qps/sales/session": {"behaviour": "status",
                                          "status": 500}}},
        {"name": "down", "behaviour": "refuse"}
    ]}

``port`` 0 (the default) picks a free port.  ``paths`` overrides the
behaviour of single paths (exact match, query string ignored).

Endpoint-only behaviours (how the port itself behaves):

* ``refuse``: a port is reserved (bound) but never listens: connect refused.
* ``reset_on_accept``: accepts the TCP connection and resets it at once
  (SO_LINGER 0), before any TLS: the client sees ECONNRESET.
* ``blackhole``: listens but never accepts: connect succeeds, TLS hangs.
* ``plain_http``: no TLS; paths answer as ``healthy`` (overrides apply).  A TLS
  hello sent to it gets an HTTP 400, as from a real HTTP server.
* ``wrong_ca`` (serves other_server.pem), ``wrong_ca_chain`` (other_server.pem
  plus the unrelated CA), ``expired_cert`` (expired_server.pem),
  ``hostname_mismatch`` (mismatch_server.pem), ``selfsigned``
  (selfsigned_server.pem): paths answer as ``healthy`` to a client that goes
  on anyway.

Response behaviours (at endpoint level for every path, or per path):

* ``healthy``: the table above.
* ``status``: ``"status": N`` (default 500) with a small JSON error body;
  optional ``"body"`` (string), ``"content_type"`` and ``"headers"`` (dict,
  e.g. a ``Location`` for redirects).
* ``reset``: reads the request, then closes with SO_LINGER 0 (ECONNRESET).
* ``slow_body``: headers and half the body at once, then one byte a second for
  ``"duration"`` seconds (default 15), then the rest.
* ``html``: 200 text/html login page.
* ``truncated_json``: 200 application/json carrying half of the healthy body,
  then a clean close (TLS close_notify, FIN).  ``"framing"``:
  ``"content_length"`` (default: the full length is announced, so the client
  sees a short transfer) or ``"close"`` (no Content-Length: the client sees a
  complete 200 whose JSON is cut).
* ``blackhole``: reads the request and never answers (until ``stop()``).
* ``gzip``: the healthy answer, gzip-compressed with ``Content-Encoding: gzip``
  whether or not the client asked for it (as some proxies do).
* ``gzip_bomb``: 200 application/json, ``Content-Encoding: gzip``, a valid
  JSON array of ``"decoded_mb"`` MiB (default 256) when decoded, about a
  thousandth of that on the wire; close-delimited, compressed as it is sent.
* ``large_apps``: a QRS app list (a JSON array of realistic app objects) of
  ``"size_mb"`` MiB (default 50), with its Content-Length, sent in 64 KiB
  pieces spread evenly over ``"seconds"`` (default 10) and generated as it
  is sent (the site never holds it).

* ``endless_body``: 200 application/json, close-delimited, a JSON array that
  never ends (``[0,0,0,...``), sent as fast as the client reads, until the
  client goes or the site stops.
* ``drip``: 200 application/json announcing ``"length"`` bytes (default
  1 MiB) of a JSON object, ``{`` then one space a second, never finishing within a poll's timeout.
* ``huge_headers``: 200 with ``"header_kb"`` KiB (default 1024) of extra
  header lines before the end of the head, then the healthy body.
* ``never_close``: the healthy body, complete, without a Content-Length and
  with no close afterwards: a client waiting for the end of the body waits
  until the site stops.

A redirect loop needs no behaviour of its own: ``status`` 302 with a
``Location`` header naming the same path.

``"check_xrfkey": true`` on an endpoint makes /qps and /qrs answer 403, as
Qlik Sense does, when the ``xrfkey`` query parameter and the
``X-Qlik-Xrfkey`` header are missing or differ.

TLS endpoints require a client certificate issued by the PKI's root.pem: a
client without one fails the handshake (listed by ``tls_failures()``).

Every request that reaches the HTTP layer is recorded as a dict ``{endpoint,
method, path, query, headers, client_cert_subject, time}`` (``headers`` is a
list of ``[name, value]`` in arrival order, ``client_cert_subject`` the
client certificate's CN or None), available from ``requests()`` and appended as
a JSON line to ``record_path`` when given.

Command line (from ``tests/``; the PKI is generated into DIR when missing)::

    /usr/bin/python3 -m support.fake_qlik --scenario S.json --pki DIR \\
        --ready-file F [--record R.jsonl] [--max-seconds N]

writes ``{"ports": {name: port}, "pid": PID}`` to F once every port listens
and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import email.utils
import gzip
import http
import json
import logging
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import zlib

from .certs import Pki, ensure_pki

log = logging.getLogger("support.fake_qlik")

LOOPBACK = "127.0.0.1"
ACCEPT_POLL_S = 0.2          # how often an idle acceptor checks for stop()
HANDSHAKE_TIMEOUT_S = 10.0   # a client that never finishes its TLS hello
REQUEST_TIMEOUT_S = 10.0     # a client that never finishes its request
CLOSE_TIMEOUT_S = 1.0        # waiting for the client's close_notify
HANG_LIMIT_S = 600.0         # upper bound of a path-level blackhole
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
LISTEN_BACKLOG = 128

# --------------------------------------------------------------------------
# Scenario model
# --------------------------------------------------------------------------

# Response behaviours and the extra keys each one accepts.
RESPONSE_PARAMS = {
    "healthy": set(),
    "status": {"status", "body", "content_type", "headers"},
    "reset": set(),
    "slow_body": {"duration"},
    "html": set(),
    "truncated_json": {"framing"},
    "blackhole": set(),
    "gzip": set(),
    "gzip_bomb": {"decoded_mb"},
    "large_apps": {"size_mb", "seconds"},
    "endless_body": set(),
    "drip": {"length"},
    "huge_headers": {"header_kb"},
    "never_close": set(),
}

# Endpoint behaviours serving TLS with another certificate: Pki attributes.
CERTIFICATE_BEHAVIOURS = {
    "wrong_ca": ("other_server_cert", "other_server_key"),
    "wrong_ca_chain": ("other_server_chain", "other_server_key"),
    "expired_cert": ("expired_server_cert", "expired_server_key"),
    "hostname_mismatch": ("mismatch_server_cert", "mismatch_server_key"),
    "selfsigned": ("selfsigned_server_cert", "selfsigned_server_key"),
}
DEFAULT_CERTIFICATE = ("server_cert", "server_key")

# Transports: how an endpoint's port behaves below HTTP.
TLS, PLAIN, REFUSE, BLACKHOLE = "tls", "plain", "refuse", "blackhole"
RESET = "reset_on_accept"

ENDPOINT_KEYS = {"name", "port", "behaviour", "paths", "check_xrfkey"}
BEHAVIOURS = (set(RESPONSE_PARAMS) | set(CERTIFICATE_BEHAVIOURS)
              | {"refuse", "plain_http", RESET})


@dataclasses.dataclass(frozen=True)
class ResponseSpec:
    """How one path (or every path of an endpoint) answers."""

    behaviour: str = "healthy"
    status: int = 500
    body: str | None = None
    content_type: str | None = None
    headers: tuple = ()
    duration: float = 15.0
    framing: str = "content_length"
    decoded_mb: int = 256
    size_mb: int = 50
    seconds: float = 10.0
    length: int = 1 << 20
    header_kb: int = 1024


@dataclasses.dataclass(frozen=True)
class EndpointSpec:
    """One listening port of the fake site."""

    name: str
    port: int
    transport: str
    certificate: tuple
    default: ResponseSpec
    paths: dict
    check_xrfkey: bool = False

    def response_for(self, path: str) -> ResponseSpec:
        return self.paths.get(path, self.default)


def _parse_response(raw: dict, where: str, ignore: set = frozenset()
                    ) -> ResponseSpec:
    behaviour = raw.get("behaviour", "healthy")
    if behaviour not in RESPONSE_PARAMS:
        raise ValueError(f"{where}: behaviour {behaviour!r} is not a response "
                         f"behaviour (one of {sorted(RESPONSE_PARAMS)})")
    allowed = RESPONSE_PARAMS[behaviour] | {"behaviour"} | ignore
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: keys {sorted(unknown)} are not valid for "
                         f"behaviour {behaviour!r}")
    spec = ResponseSpec(
        behaviour=behaviour,
        status=int(raw.get("status", 500)),
        body=raw.get("body"),
        content_type=raw.get("content_type"),
        headers=tuple(dict(raw.get("headers", {})).items()),
        duration=float(raw.get("duration", 15.0)),
        framing=raw.get("framing", "content_length"),
        decoded_mb=int(raw.get("decoded_mb", 256)),
        size_mb=int(raw.get("size_mb", 50)),
        seconds=float(raw.get("seconds", 10.0)),
        length=int(raw.get("length", 1 << 20)),
        header_kb=int(raw.get("header_kb", 1024)))
    if not 100 <= spec.status <= 599:
        raise ValueError(f"{where}: status {spec.status} out of range")
    if spec.framing not in ("content_length", "close"):
        raise ValueError(f"{where}: framing must be 'content_length' or "
                         f"'close'")
    return spec


def _endpoint_transport(behaviour: str) -> tuple[str, tuple]:
    """(transport, certificate attributes) of an endpoint behaviour."""
    if behaviour == "refuse":
        return REFUSE, DEFAULT_CERTIFICATE
    if behaviour == "blackhole":
        return BLACKHOLE, DEFAULT_CERTIFICATE
    if behaviour == "plain_http":
        return PLAIN, DEFAULT_CERTIFICATE
    if behaviour == RESET:
        return RESET, DEFAULT_CERTIFICATE
    return TLS, CERTIFICATE_BEHAVIOURS.get(behaviour, DEFAULT_CERTIFICATE)


def _parse_endpoint(raw: dict) -> EndpointSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"endpoint without a name: {raw!r}")
    where = f"endpoint {name!r}"
    behaviour = raw.get("behaviour", "healthy")
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"{where}: unknown behaviour {behaviour!r} (one of "
                         f"{sorted(BEHAVIOURS)})")
    transport, certificate = _endpoint_transport(behaviour)

    if transport in (REFUSE, BLACKHOLE, RESET):
        # Nothing reaches HTTP: paths and response keys would be ignored.
        allowed = {"name", "port", "behaviour"}
    elif behaviour in RESPONSE_PARAMS:
        allowed = ENDPOINT_KEYS | RESPONSE_PARAMS[behaviour]
    else:
        allowed = ENDPOINT_KEYS
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: keys {sorted(unknown)} are not valid for "
                         f"behaviour {behaviour!r}")

    default = ResponseSpec()
    if transport == TLS and behaviour in RESPONSE_PARAMS:
        default = _parse_response(raw, where, ignore=ENDPOINT_KEYS)
    paths = {}
    for path, override in dict(raw.get("paths", {})).items():
        if not path.startswith("/"):
            raise ValueError(f"{where}: path {path!r} must start with '/'")
        paths[path] = _parse_response(override, f"{where} path {path!r}")
    return EndpointSpec(name=name, port=int(raw.get("port", 0)),
                        transport=transport, certificate=certificate,
                        default=default, paths=paths,
                        check_xrfkey=bool(raw.get("check_xrfkey", False)))


def parse_scenario(scenario: dict) -> list[EndpointSpec]:
    """Validate a scenario dict; raises ``ValueError`` naming the problem."""
    endpoints = [_parse_endpoint(raw) for raw in scenario.get("endpoints", [])]
    names = [e.name for e in endpoints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate endpoint names: {duplicates}")
    if not endpoints:
        raise ValueError("scenario has no endpoints")
    return endpoints


# --------------------------------------------------------------------------
# Qlik Sense payloads
# --------------------------------------------------------------------------

APP_IDS = ("3f1d2a6c-8a43-4c54-9a8c-1f0b3c1d2e01",
           "8b2e4f10-5c6d-4e7f-8a9b-0c1d2e3f4a02",
           "c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e03")
APP_NAMES = ("Sales dashboard", "Operations monitor", "Butler SOS metrics")


def healthcheck_payload() -> dict:
    return {
        "version": "12.1477.2",
        "started": "20240115T081532.000+0000",
        "mem": {"committed": 1873.28, "allocated": 2201.44, "free": 13890.71},
        "cpu": {"total": 3},
        "session": {"active": 2, "total": 5},
        "apps": {"active_docs": list(APP_IDS[:2]),
                 "in_memory_docs": list(APP_IDS),
                 "loaded_docs": list(APP_IDS[:2]),
                 "calls": 1432, "selections": 87},
        "users": {"active": 2, "total": 4},
        "cache": {"hits": 311, "lookups": 540, "added": 229, "replaced": 12,
                  "bytes_added": 48211},
        "saturated": False,
    }


def sessions_payload(virtual_proxy: str) -> list:
    users = (("LAB", "anna"), ("LAB", "erik"))
    return [{
        "UserDirectory": directory,
        "UserId": user,
        "Attributes": [{"email": f"{user}@lab.example.com"},
                       {"virtualProxy": virtual_proxy}],
        "SessionId": f"5e1c0f2a-{index:04x}-4b6d-9c2e-7a8b9c0d1e2f",
    } for index, (directory, user) in enumerate(users)]


def apps_payload() -> list:
    stream = {"id": "aaec8d41-5201-43ab-809f-3063750dfafd",
              "name": "Everyone", "privileges": None}
    return [{
        "id": app_id,
        "name": name,
        "appId": "",
        "publishTime": "2024-01-10T09:00:00.000Z",
        "published": True,
        "stream": stream,
        "createdDate": "2023-11-02T14:21:07.114Z",
        "modifiedDate": "2024-01-10T09:00:00.000Z",
        "owner": {"id": "0f3e5b1a-7c2d-4e8f-9a0b-1c2d3e4f5a6b",
                  "userId": "sa_repository", "userDirectory": "INTERNAL"},
        "fileSize": 1048576 * (index + 1),
        "lastReloadTime": "2024-01-15T06:00:12.000Z",
        "privileges": None,
    } for index, (app_id, name) in enumerate(zip(APP_IDS, APP_NAMES))]


LOGIN_PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Qlik Sense - Log in</title></head>
<body>
<form method="post" action="/internal_forms_authentication/">
<label>User name <input name="username" type="text"></label>
<label>Password <input name="pwd" type="password"></label>
<button type="submit">Log in</button>
</form>
</body>
</html>
"""

_SESSION_PATH = re.compile(r"^/qps(?:/([^/]+))?/session$")


def healthy_payload(path: str):
    """The JSON a healthy Qlik Sense server returns for ``path``, or None."""
    if path == "/engine/healthcheck":
        return healthcheck_payload()
    if path == "/qrs/app":
        return apps_payload()
    match = _SESSION_PATH.match(path)
    if match:
        return sessions_payload("/" + (match.group(1) or ""))
    return None


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

@dataclasses.dataclass
class _Request:
    method: str
    path: str
    query: str
    headers: list


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request."""


def _read_request(conn, timeout: float) -> _Request | None:
    """Read one request head (and body); None if the client gave up."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        if data and not data[:1].isalpha():
            raise _BadRequest("not an HTTP request (a TLS hello?)")
        if len(data) > MAX_HEAD_BYTES:
            raise _BadRequest("request head too large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        chunk = conn.recv(16384)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request = _parse_head(head.decode("iso-8859-1"))
    _drain_body(conn, request, len(body), deadline)
    return request


def _parse_head(head: str) -> _Request:
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"bad request line {lines[0]!r}")
    method, target, _ = parts
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _BadRequest(f"bad header line {line!r}")
        headers.append([name, value.strip()])
    return _Request(method=method, path=path, query=query, headers=headers)


def _header(request: _Request, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name.lower():
            return value
    return None


def _drain_body(conn, request: _Request, already: int, deadline: float):
    """Read (and drop) a request body announced by Content-Length."""
    try:
        remaining = int(_header(request, "Content-Length") or 0) - already
    except ValueError:
        raise _BadRequest("bad Content-Length") from None
    if remaining > MAX_BODY_BYTES:
        raise _BadRequest("request body too large")
    while remaining > 0 and time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


def _response_head(status: int, content_type: str | None,
                   content_length: int | None, extra=()) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}",
             f"Date: {email.utils.formatdate(usegmt=True)}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines += [f"{name}: {value}" for name, value in extra]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")


def _json_bytes(payload) -> bytes:
    return json.dumps(payload, indent=1).encode()


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _error_body(status: int) -> bytes:
    phrase = _reason(status)
    return _json_bytes({"statusCode": status, "error": phrase,
                        "message": f"{phrase} (fake Qlik Sense)"})


def _close_gracefully(conn) -> None:
    """TLS close_notify (when TLS), FIN, then wait briefly for the client's
    EOF before closing, so that unread input never turns the close into a
    reset.  Bounded by a few CLOSE_TIMEOUT_S."""
    try:
        conn.settimeout(CLOSE_TIMEOUT_S)
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn = conn.unwrap()
            except (ssl.SSLError, OSError):
                pass  # the client closed without its own close_notify
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while time.monotonic() < deadline and conn.recv(4096):
            pass
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def _close_with_reset(conn) -> None:
    """Close so that the kernel sends RST: the client sees ECONNRESET."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    finally:
        conn.close()


def _common_name(conn) -> str | None:
    if not isinstance(conn, ssl.SSLSocket):
        return None
    cert = conn.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def _xrfkey_ok(request: _Request) -> bool:
    query = urllib.parse.parse_qs(request.query)
    from_query = next((v[0] for k, v in query.items()
                       if k.lower() == "xrfkey"), None)
    return bool(from_query) and from_query == _header(request,
                                                       "X-Qlik-Xrfkey")


# --------------------------------------------------------------------------
# Responders: one function per response behaviour.  Each owns ``conn`` and
# closes it; ``stop`` is the site's stop event.
# --------------------------------------------------------------------------

def _send_and_close(conn, status, body: bytes, content_type, extra=()):
    conn.sendall(_response_head(status, content_type, len(body), extra)
                 + body)
    _close_gracefully(conn)


def _respond_healthy(conn, spec, request, stop):
    payload = healthy_payload(request.path)
    if payload is None:
        _send_and_close(conn, 404, b"Not Found\n", "text/plain")
    else:
        _send_and_close(conn, 200, _json_bytes(payload),
                        "application/json; charset=utf-8")


def _respond_status(conn, spec, request, stop):
    if spec.body is not None:
        body = spec.body.encode()
        content_type = spec.content_type or "text/plain; charset=utf-8"
    elif spec.status in (204, 304):
        body, content_type = b"", spec.content_type
    else:
        body = _error_body(spec.status)
        content_type = spec.content_type or "application/json; charset=utf-8"
    _send_and_close(conn, spec.status, body, content_type, spec.headers)


def _respond_reset(conn, spec, request, stop):
    _close_with_reset(conn)


def _respond_slow_body(conn, spec, request, stop):
    body = _json_bytes(healthy_payload(request.path) or {"slow": True})
    half = len(body) // 2
    dribble = int(spec.duration) + 1
    body += b" " * max(0, half + dribble - len(body))  # JSON allows padding
    conn.sendall(_response_head(200, "application/json; charset=utf-8",
                                len(body)) + body[:half])
    sent = half
    for _ in range(dribble - 1):
        if stop.wait(1.0):
            conn.close()
            return
        conn.sendall(body[sent:sent + 1])
        sent += 1
    conn.sendall(body[sent:])
    _close_gracefully(conn)


def _respond_html(conn, spec, request, stop):
    _send_and_close(conn, 200, LOGIN_PAGE, "text/html; charset=utf-8")


def _respond_truncated_json(conn, spec, request, stop):
    body = _json_bytes(healthy_payload(request.path) or {"truncated": True})
    length = len(body) if spec.framing == "content_length" else None
    conn.sendall(_response_head(200, "application/json; charset=utf-8",
                                length) + body[:len(body) // 2])
    _close_gracefully(conn)


def _respond_blackhole(conn, spec, request, stop):
    stop.wait(HANG_LIMIT_S)
    conn.close()


def _respond_gzip(conn, spec, request, stop):
    payload = healthy_payload(request.path)
    if payload is None:
        _send_and_close(conn, 404, b"Not Found\n", "text/plain")
        return
    _send_and_close(conn, 200, gzip.compress(_json_bytes(payload)),
                    "application/json; charset=utf-8",
                    (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")))


def _respond_gzip_bomb(conn, spec, request, stop):
    conn.sendall(_response_head(200, "application/json; charset=utf-8", None,
                                (("Content-Encoding", "gzip"),)))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b",0" * (512 * 1024)  # 1 MiB decoded
    conn.sendall(compressor.compress(b"[0"))
    for _ in range(spec.decoded_mb):
        if stop.is_set():
            conn.close()
            return
        piece = compressor.compress(block)
        if piece:
            conn.sendall(piece)
    conn.sendall(compressor.compress(b"]") + compressor.flush())
    _close_gracefully(conn)


# One app of the large list: realistic keys, a fixed size per app (the
# index is zero-padded), so that the Content-Length is known in advance.
_APP_TEMPLATE = json.dumps({
    "id": "00000000-0000-4000-8000-{index:012d}",
    "name": "App {index:08d} with a name of typical length",
    "appId": "",
    "publishTime": "2024-01-10T09:00:00.000Z",
    "published": True,
    "stream": {"id": "aaec8d41-5201-43ab-809f-3063750dfafd",
               "name": "Everyone", "privileges": None},
    "createdDate": "2023-11-02T14:21:07.114Z",
    "modifiedDate": "2024-01-10T09:00:00.000Z",
    "owner": {"id": "0f3e5b1a-7c2d-4e8f-9a0b-1c2d3e4f5a6b",
              "userId": "sa_repository", "userDirectory": "INTERNAL"},
    "customProperties": [], "tags": [],
    "description": "x" * 1500,
    "fileSize": 1048576,
    "lastReloadTime": "2024-01-15T06:00:12.000Z",
    "privileges": None,
})


def large_apps_body(size_mb: int):
    """(Content-Length, iterator of byte pieces) of an app list of about
    ``size_mb`` MiB: a valid JSON array, generated piece by piece."""
    one = len(_APP_TEMPLATE.replace("{index:012d}", "0" * 12)
              .replace("{index:08d}", "0" * 8).encode())
    count = max(1, (size_mb << 20) // (one + 1))
    length = 2 + count * one + (count - 1)

    def pieces():
        yield b"["
        batch = []
        for index in range(count):
            text = _APP_TEMPLATE.replace("{index:012d}", f"{index:012d}"
                                         ).replace("{index:08d}",
                                                   f"{index:08d}")
            batch.append(("," if index else "") + text)
            if len(batch) == 32:
                yield "".join(batch).encode()
                batch = []
        if batch:
            yield "".join(batch).encode()
        yield b"]"

    return length, pieces()


def _respond_large_apps(conn, spec, request, stop):
    length, pieces = large_apps_body(spec.size_mb)
    conn.sendall(_response_head(200, "application/json; charset=utf-8",
                                length))
    chunk = 64 * 1024
    interval = spec.seconds / max(1, length // chunk)
    started = time.monotonic()
    pending = b""
    sent = 0
    for piece in pieces:
        pending += piece
        while len(pending) >= chunk:
            conn.sendall(pending[:chunk])
            pending = pending[chunk:]
            sent += 1
            delay = started + sent * interval - time.monotonic()
            if delay > 0 and stop.wait(delay):
                conn.close()
                return
    conn.sendall(pending)
    _close_gracefully(conn)


def _respond_endless_body(conn, spec, request, stop):
    conn.sendall(_response_head(200, "application/json; charset=utf-8", None))
    conn.sendall(b"[0")
    block = b",0" * 32768
    deadline = time.monotonic() + HANG_LIMIT_S
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            conn.settimeout(1.0)
            try:
                conn.sendall(block)
            except socket.timeout:
                continue  # the client is not reading now; check stop
    except (OSError, ValueError):
        pass  # the client gave up: what a capped reader does
    conn.close()


def _respond_drip(conn, spec, request, stop):
    conn.sendall(_response_head(200, "application/json; charset=utf-8",
                                spec.length) + b"{")
    deadline = time.monotonic() + HANG_LIMIT_S
    try:
        for _ in range(spec.length - 1):
            if stop.wait(1.0) or time.monotonic() > deadline:
                break
            conn.sendall(b" ")
    except OSError:
        pass
    conn.close()


def _respond_huge_headers(conn, spec, request, stop):
    body = _json_bytes(healthy_payload(request.path) or {"huge": True})
    filler = "x" * 1000
    extra = [(f"X-Filler-{index}", filler) for index in range(spec.header_kb)]
    try:
        conn.sendall(_response_head(200, "application/json; charset=utf-8",
                                    len(body), extra) + body)
    except OSError:
        pass  # the client refused the head before the end
    _close_gracefully(conn)


def _respond_never_close(conn, spec, request, stop):
    body = _json_bytes(healthy_payload(request.path) or {"open": True})
    head = _response_head(200, "application/json; charset=utf-8", None)
    # No Connection: close either: nothing tells the client the body ended.
    head = head.replace(b"Connection: close\r\n", b"")
    conn.sendall(head + body)
    stop.wait(HANG_LIMIT_S)
    conn.close()


RESPONDERS = {
    "healthy": _respond_healthy,
    "status": _respond_status,
    "reset": _respond_reset,
    "slow_body": _respond_slow_body,
    "html": _respond_html,
    "truncated_json": _respond_truncated_json,
    "blackhole": _respond_blackhole,
    "gzip": _respond_gzip,
    "gzip_bomb": _respond_gzip_bomb,
    "large_apps": _respond_large_apps,
    "endless_body": _respond_endless_body,
    "drip": _respond_drip,
    "huge_headers": _respond_huge_headers,
    "never_close": _respond_never_close,
}
assert set(RESPONDERS) == set(RESPONSE_PARAMS)


# --------------------------------------------------------------------------
# Listening side
# --------------------------------------------------------------------------

def _server_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Endpoint:
    """The socket (and TLS context) of one endpoint."""

    def __init__(self, spec: EndpointSpec, pki: Pki):
        self.spec = spec
        self.context = None
        if spec.transport == TLS:
            cert, key = (getattr(pki, attr) for attr in spec.certificate)
            self.context = _server_context(cert, key, pki.root_ca)
        self.sock: socket.socket | None = None
        self.port: int | None = None

    @property
    def accepts(self) -> bool:
        return self.spec.transport in (TLS, PLAIN, RESET)

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, self.spec.port))
            if self.spec.transport != REFUSE:  # refuse: bound, never listens
                sock.listen(LISTEN_BACKLOG)
            sock.settimeout(ACCEPT_POLL_S)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.port = sock.getsockname()[1]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class _Connection:
    """An accepted connection; ``sock`` becomes the TLS socket once wrapped."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def abort(self) -> None:
        """Wake a thread blocked on this connection (from ``stop()``)."""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass


class FakeQlikSite:
    """The fake site: ``start()``, ``ports``, ``requests()``, ``stop()``.

    Runs in background threads of the calling process: one acceptor per
    listening endpoint and one thread per connection (at most
    ``max_connections`` at a time; more are closed at once).
    """

    def __init__(self, scenario: dict, pki: Pki,
                 record_path: str | None = None, *,
                 max_connections: int = 64):
        self._specs = parse_scenario(scenario)
        self._pki = pki
        self._record_path = record_path
        self._endpoints = [_Endpoint(spec, pki) for spec in self._specs]
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._tls_failures: list[dict] = []
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._acceptors: list[threading.Thread] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "FakeQlikSite":
        """Bind every endpoint; returns once all of them listen."""
        if self._started:
            raise RuntimeError("FakeQlikSite already started")
        try:
            for endpoint in self._endpoints:
                endpoint.open()
        except OSError:
            for endpoint in self._endpoints:
                endpoint.close()
            raise
        self._started = True
        for endpoint in self._endpoints:
            if endpoint.accepts:
                thread = threading.Thread(
                    target=self._accept_loop, args=(endpoint,), daemon=True,
                    name=f"fake-qlik-accept-{endpoint.spec.name}")
                thread.start()
                self._acceptors.append(thread)
        log.info("fake Qlik site listening: %s", self.ports)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket and join every thread (within ``timeout``)."""
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._acceptors:
            thread.join(max(0.0, deadline - time.monotonic()))
        for endpoint in self._endpoints:
            endpoint.close()
        while self._live_threads() and time.monotonic() < deadline:
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                connection.abort()
            for thread in self._live_threads():
                thread.join(min(0.1, max(0.0, deadline - time.monotonic())))
        leftover = self._live_threads()
        if leftover:
            log.warning("fake Qlik site: %d connection threads still running "
                        "after stop()", len(leftover))

    def __enter__(self) -> "FakeQlikSite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- queries -----------------------------------------------------------

    @property
    def ports(self) -> dict:
        """Endpoint name -> port (also for ``refuse``: the reserved port)."""
        return {e.spec.name: e.port for e in self._endpoints}

    def url(self, name: str, path: str = "/engine/healthcheck",
            host: str = "localhost") -> str:
        """``https://localhost:PORT/path`` (``http`` for plain_http)."""
        endpoint = self._endpoint(name)
        scheme = "http" if endpoint.spec.transport == PLAIN else "https"
        return f"{scheme}://{host}:{endpoint.port}{path}"

    def requests(self, endpoint: str | None = None) -> list[dict]:
        """Recorded requests, oldest first (optionally of one endpoint)."""
        with self._lock:
            return [dict(r) for r in self._requests
                    if endpoint is None or r["endpoint"] == endpoint]

    def tls_failures(self, endpoint: str | None = None) -> list[dict]:
        """Failed TLS handshakes: ``{endpoint, error, time}``."""
        with self._lock:
            return [dict(f) for f in self._tls_failures
                    if endpoint is None or f["endpoint"] == endpoint]

    def _endpoint(self, name: str) -> _Endpoint:
        for endpoint in self._endpoints:
            if endpoint.spec.name == name:
                return endpoint
        raise KeyError(f"no endpoint named {name!r}")

    # -- accepting ---------------------------------------------------------

    def _accept_loop(self, endpoint: _Endpoint) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = endpoint.sock.accept()
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("accept failed on %s", endpoint.spec.name)
                return
            self._dispatch(endpoint, sock)

    def _dispatch(self, endpoint: _Endpoint, sock: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("%s: too many connections, closing a new one",
                        endpoint.spec.name)
            sock.close()
            return
        connection = _Connection(sock)
        thread = threading.Thread(
            target=self._serve, args=(endpoint, connection), daemon=True,
            name=f"fake-qlik-conn-{endpoint.spec.name}")
        with self._lock:
            self._connections.add(connection)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _live_threads(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    # -- one connection ----------------------------------------------------

    def _serve(self, endpoint: _Endpoint, connection: _Connection) -> None:
        try:
            if endpoint.spec.transport == RESET:
                _close_with_reset(connection.sock)
                return
            if endpoint.context is not None and not self._handshake(
                    endpoint, connection):
                return
            self._serve_http(endpoint, connection)
        except OSError as error:  # the client went away, or stop()
            log.debug("%s: connection ended: %s", endpoint.spec.name, error)
        finally:
            connection.sock.close()
            with self._lock:
                self._connections.discard(connection)
            self._slots.release()

    def _handshake(self, endpoint: _Endpoint, connection: _Connection
                   ) -> bool:
        connection.sock.settimeout(HANDSHAKE_TIMEOUT_S)
        connection.sock = endpoint.context.wrap_socket(
            connection.sock, server_side=True, do_handshake_on_connect=False)
        if self._stop.is_set():
            return False
        try:
            connection.sock.do_handshake()
            return True
        except (ssl.SSLError, OSError) as error:
            if self._stop.is_set():
                return False
            with self._lock:
                self._tls_failures.append({"endpoint": endpoint.spec.name,
                                           "error": str(error),
                                           "time": time.time()})
            log.info("%s: TLS handshake failed: %s", endpoint.spec.name, error)
            return False

    def _serve_http(self, endpoint: _Endpoint, connection: _Connection):
        conn = connection.sock
        try:
            request = _read_request(conn, REQUEST_TIMEOUT_S)
        except _BadRequest as error:
            log.info("%s: bad request: %s", endpoint.spec.name, error)
            _send_and_close(conn, 400, b"Bad Request\n", "text/plain")
            return
        if request is None:
            return
        self._record(endpoint, conn, request)
        spec = endpoint.spec.response_for(request.path)
        if (endpoint.spec.check_xrfkey and spec.behaviour == "healthy"
                and request.path.startswith(("/qps/", "/qrs/"))
                and not _xrfkey_ok(request)):
            spec = ResponseSpec(behaviour="status", status=403,
                                body="XSRF prevention check failed. "
                                     "Possible XSRF discovered.")
        RESPONDERS[spec.behaviour](conn, spec, request, self._stop)

    def _record(self, endpoint: _Endpoint, conn, request: _Request) -> None:
        entry = {
            "endpoint": endpoint.spec.name,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "client_cert_subject": _common_name(conn),
            "time": time.time(),
        }
        with self._lock:
            self._requests.append(entry)
            if self._record_path:
                with open(self._record_path, "a", encoding="utf-8") as out:
                    out.write(json.dumps(entry) + "\n")
        log.debug("%s: %s %s", endpoint.spec.name, request.method,
                  request.path)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m support.fake_qlik",
        description="Run a fake Qlik Sense site until SIGTERM or SIGINT.")
    parser.add_argument("--scenario", required=True, help="scenario JSON file")
    parser.add_argument("--pki", required=True,
                        help="PKI directory (generated when it has none)")
    parser.add_argument("--ready-file", required=True,
                        help='written as {"ports": {...}} once listening')
    parser.add_argument("--record", help="append requests as JSON lines here")
    parser.add_argument("--max-seconds", type=float, default=0,
                        help="stop by itself after this long (0: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s fake_qlik %(message)s")

    with open(args.scenario, encoding="utf-8") as scenario_file:
        scenario = json.load(scenario_file)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())

    site = FakeQlikSite(scenario, ensure_pki(args.pki), args.record)
    site.start()
    try:
        _write_atomically(args.ready_file, json.dumps(
            {"ports": site.ports, "pid": os.getpid()}) + "\n")
        limit = args.max_seconds or float("inf")
        started = time.monotonic()
        while not done.wait(0.5):
            if time.monotonic() - started > limit:
                log.info("--max-seconds reached")
                break
    finally:
        site.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
