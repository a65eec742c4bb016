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
import struct

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
                  extra_args=()) -> procs.Proc:
    proc = procs.Proc([procs.bin_path("qs-error-tracker"), "--config",
                       config_path, *extra_args], name=name, log_dir=log_dir)
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
                    timeout: float = 30):
    """Run ``qs-poller --config F ARGS`` to completion (``--check-config``,
    a config that must be rejected); returns the CompletedProcess.
    ``env`` as for ``start_poller_env``."""
    import subprocess
    full_env = _merged_env(env or {})
    return subprocess.run([procs.bin_path("qs-poller"), "--config",
                           config_path, *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


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
# Added for the issue-5 durability tests (tracker WAL, poller spool).
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
                       extra_args=()) -> procs.Proc:
    """Start qs-error-tracker without waiting for it to listen (for a start
    that must fail)."""
    proc = procs.Proc([procs.bin_path("qs-error-tracker"), "--config",
                       config_path, *extra_args], name=name, log_dir=log_dir)
    return proc.start()


# The tracker's write-ahead log (tracker-service/write_ahead_log.h): segment
# files wal-<16 hex>.log, an 8-byte magic, then records
# [u32 LE length][u32 LE CRC-32 of payload][payload = serialized PollFailure].
WAL_MAGIC = b"QFPWAL1\n"
WAL_SEGMENT = re.compile(r"^wal-([0-9a-f]{16})\.log$")
WAL_RECORD_HEADER = 8


def wal_segments(directory: str) -> list[str]:
    """The segment files of a WAL directory, oldest first."""
    names = sorted(name for name in os.listdir(directory)
                   if WAL_SEGMENT.match(name))
    return [os.path.join(directory, name) for name in names]


def wal_records(path: str) -> list[tuple[int, bytes]]:
    """``[(offset, payload)]`` of the valid records of one segment, in
    order, stopping at the first torn or corrupt one (as the tracker
    does)."""
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(WAL_MAGIC):
        return []
    records = []
    offset = len(WAL_MAGIC)
    while len(data) - offset >= WAL_RECORD_HEADER:
        length, crc = struct.unpack_from("<II", data, offset)
        start = offset + WAL_RECORD_HEADER
        payload = data[start:start + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            break
        records.append((offset, payload))
        offset = start + length
    return records


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
