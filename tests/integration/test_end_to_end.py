"""A failed poll travels end to end: real HTTPS poll -> gRPC -> real influxd.

A fake Qlik Sense site (real TLS, client certificates verified) serves one
healthy server and several failing ones; a private influxd, qs-error-tracker
and qs-poller run as real processes. The points in influxd must be exactly
the ones Butler SOS writes, one per failed attempt, none for the healthy
server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from support import certs, procs, stack
from support.fake_qlik import FakeQlikSite
from support.influxd import InfluxD
from support.scenario import ScenarioTestCase

# Server names exercise line-protocol escaping through the whole path.
HEALTHY = "sense-ok"
HTTP500 = "sense http500 east"
HTTP403 = "sense,403=x"
REFUSED = "sense-refused"
BLACKHOLE = "sense-blackhole"
WRONG_CA = "sense-wrong-ca"

REQUEST_TIMEOUT_MS = 1500
HEALTH_INTERVAL_MS = 2000


class EndToEndTest(ScenarioTestCase):
    """One run of the whole system, several assertions on what it stored."""
    TMP_PREFIX = "qfp-e2e-"

    @classmethod
    def start_scenario(cls):
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        cls.site = cls.start_site([
            {"name": "ok", "behaviour": "healthy"},
            {"name": "http500", "behaviour": "status", "status": 500},
            {"name": "http403", "behaviour": "status", "status": 403},
            {"name": "refused", "behaviour": "refuse"},
            {"name": "blackhole", "behaviour": "blackhole"},
            {"name": "wrong_ca", "behaviour": "wrong_ca"},
        ], cls.pki)
        ports = cls.site.ports
        cls.ports = ports
        tracker_port = procs.free_port()
        cls.metrics_ports = {"poller": procs.free_port(),
                             "tracker": procs.free_port()}
        config = stack.butler_config(
            cls.pki,
            [stack.server_entry(HEALTHY, ports["ok"]),
             stack.server_entry(HTTP500, ports["http500"]),
             stack.server_entry(HTTP403, ports["http403"]),
             stack.server_entry(REFUSED, ports["refused"]),
             stack.server_entry(BLACKHOLE, ports["blackhole"]),
             stack.server_entry(WRONG_CA, ports["wrong_ca"])],
            influx_port=cls.influx.http_port, tracker_port=tracker_port,
            health_interval_ms=HEALTH_INTERVAL_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            tracker_extra={"metricsListen":
                           f"127.0.0.1:{cls.metrics_ports['tracker']}"},
            poller_extra={"metricsListen":
                          f"127.0.0.1:{cls.metrics_ports['poller']}"})
        cls.config_path = stack.write_config(
            os.path.join(cls.tmp, "butler-sos.yaml"), config)
        cls.started_ns = time.time_ns()
        cls.tracker = cls.started_process(
            stack.start_tracker(cls.config_path, cls.tmp))
        cls.poller = cls.started_process(
            stack.start_poller(cls.config_path, cls.tmp))
        failing = [HTTP500, HTTP403, REFUSED, BLACKHOLE, WRONG_CA]
        try:
            # Two rounds of every failing server, the black hole included.
            procs.wait_until(
                lambda: all(stack.failures_logged_for(
                    cls.poller.log_text(), name) >= 2 for name in failing),
                timeout=40, message="two failed rounds of every server")
            # Let the tracker flush, then read both services' metrics.
            time.sleep(1.0)
            cls.metrics = {name: stack.scrape_metrics(port)
                           for name, port in cls.metrics_ports.items()}
        finally:
            cls.poller_exit = cls.poller.stop(timeout=20)
            cls.tracker_exit = cls.tracker.stop(timeout=20)
            cls.stopped_ns = time.time_ns()
        cls.points = cls.influx.points(stack.MEASUREMENT, stack.DB,
                                       epoch="ns")

    def points_of(self, server):
        return [p for p in self.points if p["server_name"] == server]

    def first_point(self, server):
        points = sorted(self.points_of(server), key=lambda p: p["time"])
        self.assertTrue(points, f"no point for {server!r}")
        point = dict(points[0])
        del point["time"]
        # SELECT * lists every column of the measurement; unset ones are None.
        return {k: v for k, v in point.items() if v is not None}

    def url(self, port):
        return f"https://127.0.0.1:{port}/engine/healthcheck"

    def test_both_services_exit_cleanly(self):
        self.assertEqual(self.poller_exit, 0, self.poller.log_text()[-2000:])
        self.assertEqual(self.tracker_exit, 0, self.tracker.log_text()[-2000:])
        self.assertIn("every failure acknowledged by the tracker, 0 failures "
                      "left in spool", self.poller.log_text().splitlines()[-1])

    def test_one_point_per_failed_attempt_and_none_for_healthy(self):
        log = self.poller.log_text()
        for server in (HTTP500, HTTP403, REFUSED, BLACKHOLE, WRONG_CA):
            with self.subTest(server=server):
                logged = stack.failures_logged_for(log, server)
                self.assertGreaterEqual(logged, 2)
                self.assertEqual(len(self.points_of(server)), logged)
        self.assertEqual(self.points_of(HEALTHY), [])
        self.assertEqual(stack.failures_logged_for(log, HEALTHY), 0)

    def test_http_500_point(self):
        port = self.ports["http500"]
        self.assertEqual(self.first_point(HTTP500), {
            "error_type": "HEALTH_API", "server_name": HTTP500,
            "host": f"127.0.0.1:{port}",
            "error_category": "http_5xx", "error_code": "ERR_BAD_RESPONSE",
            "error_count": 1, "http_status": 500,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "request_url": self.url(port)})

    def test_http_403_point(self):
        port = self.ports["http403"]
        self.assertEqual(self.first_point(HTTP403), {
            "error_type": "HEALTH_API", "server_name": HTTP403,
            "host": f"127.0.0.1:{port}",
            "error_category": "auth_error", "error_code": "ERR_BAD_REQUEST",
            "error_count": 1, "http_status": 403,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "request_url": self.url(port)})

    def test_connection_refused_point(self):
        port = self.ports["refused"]
        self.assertEqual(self.first_point(REFUSED), {
            "error_type": "HEALTH_API", "server_name": REFUSED,
            "host": f"127.0.0.1:{port}",
            "error_category": "connection_refused",
            "error_code": "ECONNREFUSED", "error_count": 1,
            "remote_address": "127.0.0.1", "remote_port": port,
            "syscall": "connect",
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "request_url": self.url(port)})

    def test_timeout_point(self):
        port = self.ports["blackhole"]
        self.assertEqual(self.first_point(BLACKHOLE), {
            "error_type": "HEALTH_API", "server_name": BLACKHOLE,
            "host": f"127.0.0.1:{port}",
            "error_category": "timeout", "error_code": "ECONNABORTED",
            "error_count": 1, "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "request_url": self.url(port)})

    def test_unknown_ca_point(self):
        port = self.ports["wrong_ca"]
        self.assertEqual(self.first_point(WRONG_CA), {
            "error_type": "HEALTH_API", "server_name": WRONG_CA,
            "host": f"127.0.0.1:{port}",
            "error_category": "certificate_error",
            "error_code": "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
            "error_count": 1, "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "request_url": self.url(port)})

    def test_numeric_fields_are_floats_on_influxdb_1(self):
        self.assertEqual(
            self.influx.field_types(stack.MEASUREMENT, stack.DB), {
                "error_category": "string", "error_code": "string",
                "error_count": "float", "http_status": "float",
                "remote_address": "string", "remote_port": "float",
                "request_timeout_ms": "float", "request_url": "string",
                "syscall": "string"})
        self.assertEqual(
            sorted(self.influx.tag_keys(stack.MEASUREMENT, stack.DB)),
            ["error_type", "host", "server_name"])

    def test_points_carry_the_failure_time(self):
        for point in self.points:
            self.assertGreaterEqual(point["time"], self.started_ns)
            self.assertLessEqual(point["time"], self.stopped_ns)
        # A server's rounds are HEALTH_INTERVAL_MS apart, not written in one
        # flush at the same instant.
        times = sorted(p["time"] for p in self.points_of(HTTP500))
        self.assertGreaterEqual(times[1] - times[0],
                                (HEALTH_INTERVAL_MS - 500) * 1_000_000)

    def test_database_and_retention_policy_created(self):
        answer = self.influx.query("SHOW RETENTION POLICIES ON senseops")
        rows = answer["results"][0]["series"][0]["values"]
        self.assertIn("10d", [row[0] for row in rows])
        default = [row for row in rows if row[-1] is True]
        self.assertEqual(default[0][0], "10d")

    def test_every_failure_logged_by_the_tracker(self):
        tracker_failures = stack.failure_lines(self.tracker.log_text())
        self.assertEqual(len(tracker_failures), len(self.points))

    def test_metrics_describe_the_run(self):
        poller, tracker = self.metrics["poller"], self.metrics["tracker"]
        self.assertEqual(poller[("qfp_poller_poll_failures_total",
                                 (("source", "HEALTH_API"),
                                  ("category", "http_5xx")))] >= 2, True)
        polls = poller[("qfp_poller_polls_total",
                        (("source", "HEALTH_API"),))]
        failures = sum(v for (name, _), v in poller.items()
                       if name == "qfp_poller_poll_failures_total")
        self.assertGreater(polls, failures)  # the healthy server succeeds
        self.assertEqual(poller[("qfp_poller_stream_starts_total", ())], 1)
        received = tracker[("qfp_tracker_failures_received_total",
                            (("error_type", "HEALTH_API"),))]
        self.assertGreaterEqual(received, 10)
        self.assertLessEqual(received, failures)
        self.assertEqual(tracker[("qfp_tracker_failures_accepted_total", ())],
                         received)
        written = tracker[("qfp_tracker_points_written_total", ())]
        self.assertGreater(written, 0)
        self.assertLessEqual(written, received)
        self.assertGreater(tracker[("qfp_tracker_write_attempts_total",
                                    (("outcome", "ok"),))], 0)
        self.assertGreater(
            tracker[("qfp_tracker_write_duration_seconds_count", ())], 0)
        self.assertEqual(tracker[("qfp_tracker_destination_healthy", ())], 1)
        # The queue's gauges (a memory queue here: no walDirectory); the
        # poller's spool is the same kind of queue.
        self.assertIn(("qfp_tracker_queue_records", ()), tracker)
        self.assertIn(("qfp_tracker_queue_bytes", ()), tracker)
        self.assertIn(("qfp_poller_spool_records", ()), poller)
        self.assertIn(("qfp_poller_spool_bytes", ()), poller)

    def test_client_certificate_presented(self):
        requests = self.site.requests("http500")
        self.assertTrue(requests)
        for request in requests:
            self.assertEqual(request["client_cert_subject"], "QlikClient")
            self.assertEqual(request["path"], "/engine/healthcheck")
            self.assertEqual(request["query"], "")


class TrackerStartsLateTest(unittest.TestCase):
    """The poller keeps polling while the tracker is away and delivers
    every failure once it is up."""

    def test_failures_before_tracker_start_are_delivered(self):
        with tempfile.TemporaryDirectory(prefix="qfp-late-") as tmp:
            pki = certs.make_pki(os.path.join(tmp, "pki"), key_type="ec")
            with InfluxD(os.path.join(tmp, "influxd")) as influx, \
                    FakeQlikSite({"endpoints": [
                        {"name": "down", "behaviour": "status",
                         "status": 503}]}, pki) as site:
                config = stack.butler_config(
                    pki, [stack.server_entry("late", site.ports["down"])],
                    influx_port=influx.http_port,
                    tracker_port=procs.free_port(), health_interval_ms=500)
                path = stack.write_config(os.path.join(tmp, "c.yaml"), config)
                poller = stack.start_poller(path, tmp)
                try:
                    procs.wait_until(lambda: stack.failures_logged_for(
                        poller.log_text(), "late") >= 4, timeout=20)
                    tracker = stack.start_tracker(path, tmp)
                    try:
                        procs.wait_until(lambda: len(stack.stored_points(influx)) >= 6,
                                         timeout=30)
                    finally:
                        self.assertEqual(poller.stop(timeout=20), 0)
                        self.assertEqual(tracker.stop(timeout=20), 0)
                finally:
                    poller.stop(timeout=5)
                logged = stack.failures_logged_for(poller.log_text(), "late")
                self.assertEqual(
                    len(influx.points(stack.MEASUREMENT, stack.DB)), logged)


class HostNotFoundTest(unittest.TestCase):
    """host_not_found without sending DNS queries off this machine: the
    poller runs in a mount namespace whose resolv.conf names 127.0.0.1."""

    def test_unresolvable_host(self):
        unshare = shutil.which("unshare")
        if unshare is None:
            self.skipTest("unshare(1) is not installed")
        probe = subprocess.run(
            [unshare, "-m", "true"], capture_output=True, timeout=10)
        if probe.returncode != 0:
            self.skipTest("cannot create a mount namespace here "
                          f"({probe.stderr.decode().strip()}); host_not_found "
                          "would need the system resolver, which is not on "
                          "loopback")
        with tempfile.TemporaryDirectory(prefix="qfp-dns-") as tmp:
            pki = certs.make_pki(os.path.join(tmp, "pki"), key_type="ec")
            resolv = os.path.join(tmp, "resolv.conf")
            with open(resolv, "w") as f:
                # Nothing answers DNS on loopback: lookups fail at once.
                f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            with InfluxD(os.path.join(tmp, "influxd")) as influx:
                host = "qlik-sense-nowhere.invalid"
                config = stack.butler_config(
                    pki, [stack.server_entry("ghost", 4747, host=host)],
                    influx_port=influx.http_port,
                    tracker_port=procs.free_port(), health_interval_ms=1000)
                path = stack.write_config(os.path.join(tmp, "c.yaml"), config)
                tracker = stack.start_tracker(path, tmp)
                wrapper = [unshare, "-m", "sh", "-c",
                           f"mount --bind {resolv} /etc/resolv.conf && "
                           'exec "$@"', "sh"]
                poller = stack.start_poller(path, tmp, wrapper=wrapper)
                try:
                    procs.wait_until(lambda: stack.stored_points(influx),
                                     timeout=30)
                finally:
                    poller.stop(timeout=20)
                    tracker.stop(timeout=20)
                point = influx.points(stack.MEASUREMENT, stack.DB)[0]
                self.assertEqual(point["error_category"], "host_not_found")
                self.assertEqual(point["error_code"], "ENOTFOUND")
                self.assertEqual(point["syscall"], "getaddrinfo")
                self.assertEqual(point["host"], f"{host}:4747")
                self.assertEqual(point["request_url"],
                                 f"https://{host}:4747/engine/healthcheck")
                self.assertIsNone(point.get("remote_address"))


class CommandLineTest(unittest.TestCase):
    """--help describes every flag; a bad config exits 2 naming the key."""

    def run_binary(self, name, *args):
        return subprocess.run([procs.bin_path(name), *args],
                              capture_output=True, text=True, timeout=30)

    def test_help_describes_every_flag(self):
        expected = {
            "qs-poller": ["--config", "--tracker", "--check_config",
                          "--log_level", "--shutdown_deadline_ms"],
            "qs-error-tracker": ["--config", "--listen", "--log_level",
                                 "--shutdown_deadline_ms"],
        }
        for binary, flags in expected.items():
            result = self.run_binary(binary, "--help")
            text = result.stdout + result.stderr
            for flag in flags:
                with self.subTest(binary=binary, flag=flag):
                    self.assertIn(flag.lstrip("-") + " (", text)

    def test_bad_config_names_the_key_path(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.yaml")
            with open(path, "w") as f:
                f.write("Butler-SOS:\n"
                        "  serversToMonitor:\n"
                        "    pollingInterval: soon\n"
                        "  influxdbConfig:\n"
                        "    enable: true\n"
                        "    port: eighty\n"
                        "  errorTracking:\n"
                        "    enable: true\n"
                        "    influxdb: {enable: true}\n")
            poller = self.run_binary("qs-poller", "--config", path)
            self.assertEqual(poller.returncode, 2)
            self.assertIn("Butler-SOS.serversToMonitor.pollingInterval: "
                          "expected an integer", poller.stderr)
            self.assertIn("Butler-SOS.cert.clientCert: missing", poller.stderr)
            tracker = self.run_binary("qs-error-tracker", "--config", path)
            self.assertEqual(tracker.returncode, 2)
            self.assertIn("Butler-SOS.influxdbConfig.port: expected an "
                          "integer from 1 to 65535, got \"eighty\"",
                          tracker.stderr)

    def test_missing_config_file(self):
        result = self.run_binary("qs-poller", "--config", "/nonexistent.yaml")
        self.assertEqual(result.returncode, 2)
        self.assertIn("/nonexistent.yaml", result.stderr)


if __name__ == "__main__":
    unittest.main()
