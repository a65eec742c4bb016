"""The system under test, assembled from real parts for integration tests.

``butler_config()`` builds a Butler SOS config (a dict; written as JSON,
which YAML parsers read as YAML) pointing at a fake Qlik Sense site, a
private influxd and a tracker port. ``start_tracker()``/``start_poller()``
run the real binaries from ``$QFP_BIN_DIR``.
"""

from __future__ import annotations

import collections
import json
import os
import re

from support import procs

DB = "senseops"
MEASUREMENT = "butler_sos_errors"


def server_entry(name: str, port: int, *, host: str = "127.0.0.1",
                 sessions_port: int | None = None,
                 virtual_proxies: list[str] | None = None,
                 headers: dict | None = None, tags: dict | None = None) -> dict:
    """One ``serversToMonitor.servers`` entry."""
    entry = {
        "host": f"{host}:{port}",
        "serverName": name,
        "serverDescription": f"fake {name}",
        "serverTags": tags or None,
        "headers": headers or None,
        "userSessions": {"enable": False},
    }
    if sessions_port is not None:
        entry["userSessions"] = {
            "enable": True,
            "host": f"{host}:{sessions_port}",
            "virtualProxies": [{"virtualProxy": vp}
                               for vp in (virtual_proxies or ["/"])],
        }
    return entry


class NoQlikPki:
    """The cert.* keys of a tracker-only config (the tracker ignores them),
    as butler_config's `pki`."""
    client_cert = client_key = root_ca = ""


def butler_config(pki, servers: list[dict], *, influx_port: int,
                  tracker_port: int, health_interval_ms: int = 1000,
                  request_timeout_ms: int = 5000,
                  sessions_interval_ms: int | None = None,
                  app_names_host: str | None = None,
                  app_names_interval_ms: int = 1000,
                  error_tracking: bool = True, influx_points: bool = True,
                  tracker_extra: dict | None = None,
                  poller_extra: dict | None = None) -> dict:
    """A Butler SOS config with the keys both services read."""
    tracker = {"listen": f"127.0.0.1:{tracker_port}", "flushIntervalMs": 200}
    tracker.update(tracker_extra or {})
    poller = {"trackerAddress": f"127.0.0.1:{tracker_port}",
              "pollerId": "test-poller",
              "requestTimeout": request_timeout_ms}
    poller.update(poller_extra or {})
    return {"Butler-SOS": {
        "logLevel": "info",
        "errorTracking": {
            "enable": error_tracking,
            "logSummary": {"enable": True},
            "influxdb": {"enable": influx_points,
                         "measurementName": MEASUREMENT},
        },
        "cert": {
            "clientCert": pki.client_cert,
            "clientCertKey": pki.client_key,
            "clientCertCA": pki.root_ca,
            "clientCertPassphrase": "",
        },
        "influxdbConfig": {
            "enable": True, "host": "127.0.0.1", "port": influx_port,
            "version": 1, "maxBatchSize": 1000,
            "v1Config": {
                "auth": {"enable": False},
                "dbName": DB,
                "retentionPolicy": {"name": "10d", "duration": "10d"},
            },
        },
        "appNames": {
            "enableAppNameExtract": app_names_host is not None,
            "extractInterval": app_names_interval_ms,
            "hostIP": app_names_host or "",
        },
        "userSessions": {
            "enableSessionExtract": sessions_interval_ms is not None,
            "pollingInterval": sessions_interval_ms or 30000,
        },
        "serversToMonitor": {
            "pollingInterval": health_interval_ms,
            "rejectUnauthorized": True,
            "serverTagsDefinition": [],
            "servers": servers,
        },
        "failedPolls": {"poller": poller, "tracker": tracker},
    }}


def write_config(path: str, config: dict) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return path


def start_tracker(config_path: str, log_dir: str, *, name="tracker",
                  extra_args=(), env: dict | None = None) -> procs.Proc:
    """Start qs-error-tracker and wait until it listens. ``env`` is added to
    this process's environment (a value None removes the variable)."""
    proc = procs.Proc([procs.bin_path("qs-error-tracker"), "--config",
                       config_path, *extra_args], name=name, log_dir=log_dir,
                      env=_merged_env(env) if env else None)
    proc.start()
    proc.wait_for_log("listening on", timeout=20)
    return proc


def start_poller(config_path: str, log_dir: str, *, name="poller",
                 extra_args=(), wrapper=()) -> procs.Proc:
    args = [*wrapper, procs.bin_path("qs-poller"), "--config", config_path,
            *extra_args]
    proc = procs.Proc(args, name=name, log_dir=log_dir)
    proc.start()
    proc.wait_for_log("qs-poller started", timeout=20)
    return proc


def failure_lines(log_text: str) -> list[str]:
    """The poller's (or tracker's) log lines of failed polls."""
    return [line for line in log_text.splitlines() if "failed poll: " in line]


def failures_logged_for(log_text: str, server_name: str,
                        source: str = "HEALTH_API") -> int:
    """How many failed polls of ``server_name`` a log reports."""
    needle = f"{source} server={server_name} "
    return sum(1 for line in failure_lines(log_text) if needle in line)


def stored_points(influx, *, epoch: str | None = None) -> list[dict]:
    """The failed-poll points in influxd; [] while the tracker has not yet
    created the database."""
    from support.influxd import InfluxError
    try:
        return influx.points(MEASUREMENT, DB, epoch=epoch)
    except InfluxError as error:
        if "database not found" in str(error):
            return []
        raise


# --------------------------------------------------------------------------
# Added for the issue-3 integration tests (poll taxonomy, requests,
# concurrency).
# --------------------------------------------------------------------------

def _merged_env(env: dict) -> dict:
    """This process's environment with ``env`` applied (None: removed)."""
    full_env = dict(os.environ)
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return full_env


def start_poller_env(config_path: str, log_dir: str, *, env: dict,
                     name="poller", extra_args=(),
                     wait_started: bool = True) -> procs.Proc:
    """``start_poller`` with ``env`` added to this process's environment
    (e.g. ``QFP_CERT_PASSPHRASE``; a value None removes the variable)."""
    full_env = _merged_env(env)
    proc = procs.Proc([procs.bin_path("qs-poller"), "--config", config_path,
                       *extra_args], name=name, log_dir=log_dir,
                      env=full_env)
    proc.start()
    if wait_started:
        proc.wait_for_log("qs-poller started", timeout=20)
    return proc


def run_poller_once(config_path: str, *args, env: dict | None = None,
                    timeout: float = 30, cwd: str | None = None):
    """Run ``qs-poller --config F ARGS`` to completion (``--check-config``,
    a config that must be rejected); returns the CompletedProcess.
    ``env`` as for ``start_poller_env``; ``cwd`` is where a core dump would
    land."""
    import subprocess
    full_env = _merged_env(env or {})
    return subprocess.run([procs.bin_path("qs-poller"), "--config",
                           config_path, *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)


def stop_all(processes, timeout: float = 20.0) -> dict:
    """SIGTERM every running process at once, then wait for each (SIGKILL
    after ``timeout`` s); returns ``{name: exit status}``."""
    import signal as _signal
    for proc in processes:
        proc.signal(_signal.SIGTERM)
    return {proc.name: proc.stop(timeout=timeout) for proc in processes}


def point_fields(point: dict) -> dict:
    """A point from ``stored_points`` without ``time`` and without the
    columns it does not set (SELECT * gives None for those)."""
    return {k: v for k, v in point.items()
            if k != "time" and v is not None}


def point_key(point: dict) -> tuple:
    """(error_type, server_name, virtual_proxy or None) of a point."""
    return (point.get("error_type"), point.get("server_name"),
            point.get("virtual_proxy"))


def poll_starts_logged_for(log_text: str, key: str) -> int:
    """How many polls of the target ``key`` ("HEALTH_API sense1",
    "PROXY_API sense1 /sales") a poller logging at debug level started."""
    needle = f" {key}: GET "
    return sum(1 for line in log_text.splitlines() if needle in line)


def polls_cancelled_for(log_text: str, key: str) -> int:
    """How many polls of the target ``key`` the poller cancelled at
    shutdown (still running past their timeout): these give no point."""
    needle = f" {key}: poll cancelled at shutdown"
    return sum(1 for line in log_text.splitlines() if needle in line)


def polls_completed_for(log_text: str, key: str) -> int:
    """Polls of ``key`` started and not cancelled (debug-level log)."""
    return (poll_starts_logged_for(log_text, key)
            - polls_cancelled_for(log_text, key))


def scrape_metrics(port: int, timeout: float = 10) -> dict:
    """GET /metrics from 127.0.0.1:port, parsed into
    {(name, ((label, value), ...)): float}; comments are skipped."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=timeout) as answer:
        text = answer.read().decode("utf-8")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        pairs = []
        for item in labels.rstrip("}").split('",') if labels else []:
            key, _, raw = item.partition("=")
            pairs.append((key, raw.strip('"')))
        samples[(name, tuple(pairs))] = float(value)
    return samples


# --------------------------------------------------------------------------
# Added for the issue-5 durability tests (tracker queue, poller spool).
# --------------------------------------------------------------------------

_FAILURE_SERVER = re.compile(r"failed poll: (\S+) server=(.*?) host=")


def failure_count(log_text: str) -> int:
    """How many failed polls a log reports (cheap on large logs)."""
    return log_text.count("failed poll: ")


def failures_by_server(log_text: str,
                       source: str = "HEALTH_API") -> collections.Counter:
    """``Counter({server_name: failed polls})`` of one source in a log."""
    return collections.Counter(
        match.group(2) for match in _FAILURE_SERVER.finditer(log_text)
        if match.group(1) == source)


def stored_point_count(influx) -> int:
    """How many failed-poll points influxd holds (0 before the database
    exists), with one COUNT query instead of reading every point."""
    from support.influxd import InfluxError, quote_identifier
    try:
        answer = influx.query(
            f'SELECT COUNT("error_count") FROM {quote_identifier(MEASUREMENT)}',
            db=DB)
    except InfluxError as error:
        if "database not found" in str(error):
            return 0
        raise
    for result in answer.get("results", []):
        for series in result.get("series", []):
            for row in series.get("values", []):
                return int(row[1])
    return 0


def stored_point_keys(influx) -> collections.Counter:
    """``Counter({(server_name, time in ns): n})`` of the failed-poll points
    in influxd; reads two columns only, so tens of thousands are cheap."""
    from support.influxd import InfluxError, quote_identifier
    try:
        answer = influx.query(
            f'SELECT "error_count", "server_name" FROM '
            f'{quote_identifier(MEASUREMENT)}', db=DB, epoch="ns")
    except InfluxError as error:
        if "database not found" in str(error):
            return collections.Counter()
        raise
    keys = collections.Counter()
    for result in answer.get("results", []):
        for series in result.get("series", []):
            columns = series["columns"]
            at_time = columns.index("time")
            at_server = columns.index("server_name")
            for row in series.get("values", []):
                keys[(row[at_server], row[at_time])] += 1
    return keys


def start_tracker_only(config_path: str, log_dir: str, *, name="tracker",
                       extra_args=(), env: dict | None = None,
                       cwd: str | None = None) -> procs.Proc:
    """Start qs-error-tracker without waiting for it to listen (for a start
    that must fail, or one that may be killed before it listens). ``env`` as
    for ``start_tracker``; ``cwd`` is where a core dump would land."""
    proc = procs.Proc([procs.bin_path("qs-error-tracker"), "--config",
                       config_path, *extra_args], name=name, log_dir=log_dir,
                      env=_merged_env(env) if env else None, cwd=cwd)
    return proc.start()


# The failure queue both services keep (common/sqlite_failure_queue.h): the
# tracker's walDirectory and the poller's spoolDirectory each hold
# failures.db (SQLite, WAL journal) with
#   failures(id INTEGER PRIMARY KEY, enqueued_at_ms INTEGER NOT NULL,
#            payload BLOB NOT NULL)
#   queue_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)  ("purpose", ...)
# Tracker payload: the failure's line-protocol line; poller payload: a
# serialized failedpolls.v1.PollFailure. Tests only ever read it, through a
# read-only connection (the live service may hold it open: WAL lets both).
QUEUE_DB = "failures.db"
TRACKER_QUEUE_PURPOSE = "qs-error-tracker queue"
POLLER_SPOOL_PURPOSE = "qs-poller spool"
# "failure queue: opened <path> (<purpose>): N records, B bytes reloaded"
QUEUE_OPENED = re.compile(
    r"failure queue: opened (\S+) \((.*?)\): (\d+) records, (\d+) bytes "
    r"reloaded")


def queue_db_path(directory: str) -> str:
    return os.path.join(directory, QUEUE_DB)


def open_queue_readonly(directory: str):
    """A read-only sqlite3 connection to ``directory``'s failures.db (the
    caller closes it). SQLite may create empty -wal/-shm files next to a
    database that has none; it never writes to failures.db itself."""
    import sqlite3
    path = queue_db_path(directory)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def queue_records(directory: str) -> list[tuple[int, bytes]]:
    """``[(id, payload)]`` of the committed records, in id order."""
    connection = open_queue_readonly(directory)
    try:
        return [(row[0], bytes(row[1])) for row in connection.execute(
            "SELECT id, payload FROM failures ORDER BY id")]
    finally:
        connection.close()


def queue_totals(directory: str) -> tuple[int, int]:
    """(records, payload bytes) committed in ``directory``'s queue."""
    connection = open_queue_readonly(directory)
    try:
        count, size = connection.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) "
            "FROM failures").fetchone()
        return int(count), int(size)
    finally:
        connection.close()


def queue_meta(directory: str) -> dict:
    """``{key: value}`` of queue_meta ("purpose", "format", "last_id")."""
    connection = open_queue_readonly(directory)
    try:
        return dict(connection.execute("SELECT key, value FROM queue_meta"))
    finally:
        connection.close()


def line_protocol_key(line) -> tuple[str, int]:
    """(server_name tag, timestamp in ns) of one line-protocol line (the
    tracker's queue payload): the key its point has in influxd."""
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("utf-8")
    # The series (measurement and tags) ends at the first unescaped space.
    tags, escaped, at = [], False, 0
    current = []
    for at, char in enumerate(line):
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ", ":
            tags.append("".join(current))
            current = []
            if char == " ":
                break
        else:
            current.append(char)
    else:
        raise ValueError(f"no fields in line {line!r}")
    server = None
    for tag in tags[1:]:  # tags[0] is the measurement
        key, _, value = tag.partition("=")
        if key == "server_name":
            server = value
    if server is None:
        raise ValueError(f"no server_name tag in line {line!r}")
    return server, int(line.rsplit(" ", 1)[1])


def _protobuf_fields(data: bytes):
    """(field number, wire type, value) of one protobuf message's fields:
    an int for varints and fixed types, bytes for length-delimited ones."""
    def varint(at):
        value, shift = 0, 0
        while True:
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at += 1
            if not byte & 0x80:
                return value, at
            shift += 7

    at = 0
    while at < len(data):
        key, at = varint(at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(at)
        elif wire == 1:
            value = int.from_bytes(data[at:at + 8], "little")
            at += 8
        elif wire == 2:
            length, at = varint(at)
            value = data[at:at + length]
            at += length
        elif wire == 5:
            value = int.from_bytes(data[at:at + 4], "little")
            at += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def poll_failure_key(payload: bytes) -> tuple[str, int]:
    """(server_name, occurred_at in ns) of a serialized PollFailure: the
    key its point has in influxd (failedpolls.v1: occurred_at = 2, a
    Timestamp {seconds = 1, nanos = 2}; server_name = 4)."""
    server, seconds, nanos = "", 0, 0
    for number, wire, value in _protobuf_fields(payload):
        if number == 4 and wire == 2:
            server = value.decode("utf-8")
        elif number == 2 and wire == 2:
            for inner, inner_wire, inner_value in _protobuf_fields(value):
                if inner == 1 and inner_wire == 0:
                    seconds = inner_value
                elif inner == 2 and inner_wire == 0:
                    nanos = inner_value
    return server, seconds * 1_000_000_000 + nanos


# --------------------------------------------------------------------------
# Added for the issue-8 crash-consistency and disk-fault tests: producers
# written in Python, driving the public gRPC API the way a poller does.
# --------------------------------------------------------------------------

def stored_columns(influx, *columns: str) -> list[tuple]:
    """``[(time in ns, column...)]`` of every failed-poll point in influxd
    ([] before the database exists); fields and tags alike."""
    from support.influxd import InfluxError, quote_identifier
    selected = ", ".join(quote_identifier(c) for c in columns)
    try:
        answer = influx.query(
            f"SELECT {selected} FROM {quote_identifier(MEASUREMENT)}",
            db=DB, epoch="ns")
    except InfluxError as error:
        if "database not found" in str(error):
            return []
        raise
    rows = []
    for result in answer.get("results", []):
        for series in result.get("series", []):
            at = [series["columns"].index(c) for c in ("time", *columns)]
            for row in series.get("values", []):
                rows.append(tuple(row[i] for i in at))
    return rows


def reconnecting_channel(address: str):
    """A gRPC channel to ``address`` on its own connection that retries a
    restarted server within 0.1 to 0.5 s (gRPC's default back-off grows to
    minutes after a few failed connects, far slower than a poller's)."""
    import grpc
    return grpc.insecure_channel(address, options=[
        # A connection of its own, as each poller has (gRPC would otherwise
        # share one between channels of a process with the same target).
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
    ])


class StreamEnded(Exception):
    """The tracker ended a ReportFailures stream without an error."""


class FailureStream:
    """One ReportFailures stream, driven request by request: ``send(batch)``
    writes one request and returns the tracker's answer to it (one answer per
    request), so a test knows exactly which failures each answer covers.
    The stream waits for the channel to be ready and lives at most
    ``timeout`` seconds; a broken stream raises ``grpc.RpcError`` (or
    ``StreamEnded``) from ``send``."""

    _END = object()

    def __init__(self, channel, timeout: float):
        import queue
        from support.grpc_client import pb, pb_grpc
        self._pb = pb
        self._requests = queue.SimpleQueue()
        stub = pb_grpc.FailedPollTrackerStub(channel)
        self._call = stub.ReportFailures(iter(self._requests.get, self._END),
                                         timeout=timeout, wait_for_ready=True)

    def send(self, failures):
        self._requests.put(self._pb.ReportFailuresRequest(failures=failures))
        try:
            return next(self._call)
        except StopIteration:
            raise StreamEnded("the tracker ended the stream") from None

    def close(self):
        self._requests.put(self._END)
        self._call.cancel()


def unique_failure(producer: int, sequence: int, *, base_ns: int,
                   poller: str, instance: str):
    """A PollFailure that maps to its own InfluxDB point: server_name
    ``producer-NN``, occurred_at ``base_ns + sequence`` microseconds (so no
    two of a producer share a timestamp) and error_code
    ``P<producer>-S<sequence>``, which names it among the stored points."""
    from support.grpc_client import failure
    message = failure(sequence, server=f"producer-{producer:02d}",
                      poller=poller, instance=instance,
                      code=failure_code(producer, sequence))
    at = base_ns + sequence * 1000
    message.occurred_at.seconds = at // 1_000_000_000
    message.occurred_at.nanos = at % 1_000_000_000
    return message


def failure_code(producer: int, sequence: int) -> str:
    return f"P{producer}-S{sequence}"


def point_time_for(sequence: int, base_ns: int) -> int:
    """The point time ``unique_failure`` gives ``sequence``."""
    return base_ns + sequence * 1000
