"""A private InfluxDB 1.6 server (Debian's /usr/bin/influxd) for tests.

``InfluxD(directory)`` writes ``influxd.conf`` into ``directory`` with every
listener on 127.0.0.1 and a free port, usage reporting and the ``_internal``
monitor store off, and meta, data and WAL directories below ``directory``.
The package's own service and config are never used.

    with InfluxD(tmpdir) as influx:          # start(): waits for /ping 204
        influx.query('CREATE DATABASE "qlik"')
        influx.write(["m,host=a value=1"], db="qlik")
        influx.points("m", db="qlik")        # [{"time": ..., "host": "a",
                                             #   "value": 1}]
        influx.field_types("m", db="qlik")   # {"value": "float"}

Command line (from ``tests/``)::

    /usr/bin/python3 -m support.influxd --dir D --ready-file F [--create-db N]

prints the HTTP port, writes ``{"http_port": P, "url": U, "pid": PID,
"influxd_pid": PID2}`` to F
and runs until SIGTERM or SIGINT, stopping influxd on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .procs import LOOPBACK, free_port

INFLUXD = "/usr/bin/influxd"
START_ATTEMPTS = 3          # a free port can be taken before influxd binds it
STOP_GRACE_S = 10.0
HTTP_TIMEOUT_S = 10.0

CONFIG_TEMPLATE = """\
# Written by tests/support/influxd.py: loopback only, nothing shared.
reporting-disabled = true
# Debian's build spells the same switch this way.
reporting-enabled = false
bind-address = "{loopback}:{rpc_port}"

[meta]
  dir = "{root}/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{loopback}:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false
  bind-socket = "{root}/influxd.sock"

# Disabled services never bind; their addresses are loopback anyway so that
# no default all-interfaces address appears in this file.
[ifql]
  enabled = false
  bind-address = "{loopback}:{spare_port}"

[admin]
  enabled = false

[[graphite]]
  enabled = false
  bind-address = "{loopback}:{spare_port}"

[[collectd]]
  enabled = false
  bind-address = "{loopback}:{spare_port}"

[[opentsdb]]
  enabled = false
  bind-address = "{loopback}:{spare_port}"

[[udp]]
  enabled = false
  bind-address = "{loopback}:{spare_port}"

[continuous_queries]
  enabled = true
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""

_READ_ONLY_PREFIXES = ("SELECT", "SHOW")


class InfluxError(RuntimeError):
    """InfluxDB answered with an error (HTTP status or in a result)."""


def quote_identifier(name: str) -> str:
    """InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxD:
    """One influxd process with its data under ``directory``."""

    def __init__(self, directory, binary: str = INFLUXD):
        self.directory = Path(directory).resolve()
        self.binary = binary
        self.config_path = self.directory / "influxd.conf"
        self.log_path = self.directory / "influxd.log"
        self.http_port: int | None = None
        self.rpc_port: int | None = None
        self._popen: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = 20.0) -> "InfluxD":
        """Start influxd and wait (up to ``timeout`` s) for /ping -> 204."""
        if self.running:
            raise RuntimeError("influxd already running")
        deadline = time.monotonic() + timeout
        for attempt in range(1, START_ATTEMPTS + 1):
            self._launch()
            if self._wait_for_ping(deadline):
                return self
            port_clash = "address already in use" in self.log_text()
            self.stop()
            if not port_clash or attempt == START_ATTEMPTS:
                break
        raise RuntimeError(f"influxd did not answer /ping within {timeout} s;"
                           f" log:\n{self.log_text()[-4000:]}")

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after 10 s; returns the exit status."""
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                return popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                popen.kill()
        return popen.wait(timeout=STOP_GRACE_S)

    def __enter__(self) -> "InfluxD":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def restart(self, timeout: float = 20.0) -> "InfluxD":
        """Start a stopped influxd again on the same ports and data (an
        outage ending), waiting for /ping -> 204."""
        if self.running:
            raise RuntimeError("influxd is running")
        self._keep_ports = True
        try:
            self._launch()
        finally:
            self._keep_ports = False
        if not self._wait_for_ping(time.monotonic() + timeout):
            raise RuntimeError(f"influxd did not restart on port "
                               f"{self.http_port}:\n{self.log_text()[-2000:]}")
        return self

    def _write_config(self) -> None:
        for sub in ("meta", "data", "wal"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        if getattr(self, "_keep_ports", False):
            return
        self.http_port, self.rpc_port = free_port(), free_port()
        self.config_path.write_text(CONFIG_TEMPLATE.format(
            loopback=LOOPBACK, root=self.directory, rpc_port=self.rpc_port,
            http_port=self.http_port, spare_port=free_port()))

    def _launch(self) -> None:
        self._write_config()
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                [self.binary, "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def _wait_for_ping(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self._ping():
                return True
            time.sleep(0.05)
        return False

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                return resp.status == 204
        except OSError:
            return False

    # -- HTTP API ----------------------------------------------------------

    def _request(self, path: str, params: dict, data: bytes | None = None):
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=data,
                                         method="GET" if data is None
                                         else "POST")
        try:
            with urllib.request.urlopen(request,
                                        timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            raise InfluxError(f"{path}: HTTP {error.code}: {body}") from None

    def query(self, q: str, db: str | None = None, *,
              epoch: str | None = None, check: bool = True) -> dict:
        """Run InfluxQL; returns the parsed JSON answer.

        SELECT and SHOW go as GET, anything else (CREATE, DROP...) as POST.
        ``epoch`` ("ns", "ms", "s"...) returns times as numbers instead of
        RFC 3339 strings.  With ``check`` an error in any result raises
        ``InfluxError``.
        """
        params = {"q": q}
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        read_only = q.lstrip().upper().startswith(_READ_ONLY_PREFIXES)
        _, body = self._request("/query", params,
                                None if read_only else b"")
        answer = json.loads(body)
        if check:
            errors = [r["error"] for r in answer.get("results", [])
                      if "error" in r]
            if "error" in answer:
                errors.append(answer["error"])
            if errors:
                raise InfluxError(f"{q!r}: {'; '.join(errors)}")
        return answer

    def create_database(self, db: str) -> None:
        self.query(f"CREATE DATABASE {quote_identifier(db)}")

    def write(self, lines, db: str, precision: str = "ns") -> None:
        """Write line protocol (a string or a list of lines)."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        self._request("/write", {"db": db, "precision": precision},
                      body.encode())

    def points(self, measurement: str, db: str, *,
               epoch: str | None = None) -> list[dict]:
        """Every point of ``measurement`` as a dict column -> value (tags and
        fields alike, plus ``time``); [] when the measurement is missing."""
        answer = self.query(f"SELECT * FROM {quote_identifier(measurement)}",
                            db=db, epoch=epoch)
        return [dict(zip(series["columns"], row))
                for series in _series(answer)
                for row in series.get("values", [])]

    def field_types(self, measurement: str, db: str) -> dict:
        """``{field: type}`` from SHOW FIELD KEYS (float, integer, string,
        boolean)."""
        answer = self.query(
            f"SHOW FIELD KEYS FROM {quote_identifier(measurement)}", db=db)
        return {row[0]: row[1] for series in _series(answer)
                for row in series.get("values", [])}

    def tag_keys(self, measurement: str, db: str) -> list[str]:
        answer = self.query(
            f"SHOW TAG KEYS FROM {quote_identifier(measurement)}", db=db)
        return [row[0] for series in _series(answer)
                for row in series.get("values", [])]


def _series(answer: dict) -> list[dict]:
    return [series for result in answer.get("results", [])
            for series in result.get("series", [])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m support.influxd",
        description="Run a private loopback influxd until SIGTERM/SIGINT.")
    parser.add_argument("--dir", required=True, help="data and config here")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--create-db", action="append", default=[],
                        metavar="NAME", help="create this database (repeat)")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="start-up timeout in seconds")
    args = parser.parse_args(argv)

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    influx = InfluxD(args.dir)
    influx.start(timeout=args.timeout)
    try:
        for db in args.create_db:
            influx.create_database(db)
        ready = {"http_port": influx.http_port, "url": influx.url,
                 "pid": os.getpid(), "influxd_pid": influx.pid}
        temporary = f"{args.ready_file}.tmp{os.getpid()}"
        Path(temporary).write_text(json.dumps(ready) + "\n")
        os.replace(temporary, args.ready_file)
        print(influx.http_port, flush=True)
        while not done.wait(0.5):
            if not influx.running:
                print("influxd exited on its own", file=sys.stderr)
                return 1
    finally:
        influx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
