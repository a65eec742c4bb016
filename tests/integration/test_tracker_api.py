"""The tracker's public gRPC API, driven by a Python client (another program
integrating through it): acknowledgements, refusals, duplicates,
GetErrorStats, health and reflection, with a real influxd behind it."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import unittest

from support import procs, stack
from support.grpc_client import TrackerClient, failure, pb
from support.influxd import InfluxD


class TrackerApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(cls._cleanup)
        cls.tmp = tempfile.mkdtemp(prefix="qfp-api-")
        cls.influx = InfluxD(os.path.join(cls.tmp, "influxd")).start()
        port = procs.free_port()
        config = stack.butler_config(
            _NoPki(), [], influx_port=cls.influx.http_port, tracker_port=port)
        cls.config_path = stack.write_config(
            os.path.join(cls.tmp, "c.yaml"), config)
        cls.tracker = stack.start_tracker(cls.config_path, cls.tmp)
        cls.client = TrackerClient(f"127.0.0.1:{port}")

    @classmethod
    def _cleanup(cls):
        if getattr(cls, "client", None):
            cls.client.close()
        if getattr(cls, "tracker", None):
            cls.tracker.stop(timeout=20)
        if getattr(cls, "influx", None):
            cls.influx.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_accepts_acknowledges_and_writes(self):
        batch = [failure(i, server="api-a", instance="accept")
                 for i in range(1, 51)]
        responses = self.client.report([batch[:20], batch[20:]])
        accepted = [a.sequence for r in responses for a in r.accepted]
        self.assertEqual(sorted(accepted), list(range(1, 51)))
        procs.wait_until(lambda: len([
            p for p in stack.stored_points(self.influx)
            if p["server_name"] == "api-a"]) == 50, timeout=20)

    def test_duplicate_is_acknowledged_but_written_once(self):
        one = failure(7, server="api-dup", instance="dup")
        first = self.client.report([[one]])
        again = self.client.report([[one], [one]])
        self.assertEqual(len(first[0].accepted), 1)
        self.assertEqual([len(r.accepted) for r in again], [1, 1])
        procs.wait_until(lambda: [p for p in stack.stored_points(self.influx)
                                  if p["server_name"] == "api-dup"],
                         timeout=20)
        time.sleep(1.5)  # longer than the flush interval: no second point
        points = [p for p in stack.stored_points(self.influx)
                  if p["server_name"] == "api-dup"]
        self.assertEqual(len(points), 1)

    def test_malformed_failures_are_refused_with_a_reason(self):
        no_server = failure(1, server="", instance="bad")
        no_source = failure(2, instance="bad")
        no_source.source = pb.POLL_SOURCE_UNSPECIFIED
        no_time = failure(3, instance="bad")
        no_time.ClearField("occurred_at")
        good = failure(4, server="api-good", instance="bad")
        (response,) = self.client.report([[no_server, no_source, no_time,
                                           good]])
        self.assertEqual([a.sequence for a in response.accepted], [4])
        reasons = {r.id.sequence: r.reason for r in response.refused}
        self.assertEqual(set(reasons), {1, 2, 3})
        self.assertIn("server_name", reasons[1])
        self.assertIn("source", reasons[2])
        self.assertIn("occurred_at", reasons[3])

    def test_hostile_strings_are_written_safely(self):
        nasty = failure(1, server='evil name "x" \\ ,= \u00e9\U0001F600',
                        instance="hostile")
        # A line break would have to be changed on its way into line
        # protocol (and could forge a log line): refused as malformed.
        broken = failure(2, server="evil\nname", instance="hostile")
        (response,) = self.client.report([[nasty, broken]])
        self.assertEqual([a.sequence for a in response.accepted], [1])
        (refusal,) = response.refused
        self.assertEqual(refusal.id.sequence, 2)
        self.assertEqual(refusal.code, pb.REFUSAL_CODE_INVALID_ARGUMENT)
        self.assertEqual(refusal.reason,
                         "server_name holds a control character")
        procs.wait_until(lambda: [p for p in stack.stored_points(self.influx)
                                  if p["server_name"].startswith("evil")],
                         timeout=20)
        (point,) = [p for p in stack.stored_points(self.influx)
                    if p["server_name"].startswith("evil")]
        self.assertEqual(point["server_name"],
                         'evil name "x" \\ ,= \u00e9\U0001F600')

    def test_error_stats_count_per_type_and_server(self):
        batch = [failure(1, server="stats-1", instance="stats"),
                 failure(2, server="stats-1", instance="stats",
                         source=pb.PROXY_API),
                 failure(3, server="stats-2", instance="stats",
                         source=pb.PROXY_API)]
        self.client.report([batch])
        stats = self.client.error_stats()
        self.assertEqual(stats.day, time.strftime("%Y-%m-%d", time.gmtime()))
        by_type = {t.error_type: {s.server_name: s.count for s in t.servers}
                   for t in stats.types}
        self.assertEqual(by_type["PROXY_API"].get("stats-1"), 1)
        self.assertEqual(by_type["PROXY_API"].get("stats-2"), 1)
        self.assertEqual(by_type["HEALTH_API"].get("stats-1"), 1)
        self.assertEqual(stats.total, sum(t.total for t in stats.types))

    def test_health_and_reflection(self):
        self.assertEqual(self.client.health(), 1)  # SERVING
        services = self.client.reflected_services()
        self.assertIn(b"failedpolls.v1.FailedPollTracker", services)
        self.assertIn(b"grpc.health.v1.Health", services)


class TrackerHealthTest(unittest.TestCase):
    """NOT_SERVING while InfluxDB is unusable; SERVING again after."""

    def test_health_follows_the_destination(self):
        with tempfile.TemporaryDirectory(prefix="qfp-health-") as tmp:
            with InfluxD(os.path.join(tmp, "influxd")) as influx:
                port = procs.free_port()
                config = stack.butler_config(
                    _NoPki(), [], influx_port=influx.http_port,
                    tracker_port=port)
                path = stack.write_config(os.path.join(tmp, "c.yaml"), config)
                tracker = stack.start_tracker(path, tmp)
                client = TrackerClient(f"127.0.0.1:{port}")
                try:
                    self.assertEqual(client.health(), 1)
                    influx.stop()
                    client.report([[failure(1, instance="h")]])
                    procs.wait_until(lambda: client.health() == 2,
                                     timeout=20, message="NOT_SERVING")
                    influx.restart()
                    procs.wait_until(lambda: client.health() == 1,
                                     timeout=30, message="SERVING again")
                    procs.wait_until(lambda: stack.stored_points(influx),
                                     timeout=20)
                finally:
                    client.close()
                    self.assertEqual(tracker.stop(timeout=20), 0)


class _NoPki:
    """The tracker reads no certificates; the config only needs paths."""
    client_cert = client_key = root_ca = "/nonexistent"


class TrackerSwitchesTest(unittest.TestCase):
    """errorTracking.enable false: nothing counted or written, every failure
    still logged. errorTracking.influxdb.enable false: counted and logged,
    nothing written."""

    def run_tracker(self, tmp, influx, *, error_tracking, influx_points):
        port = procs.free_port()
        config = stack.butler_config(
            _NoPki(), [], influx_port=influx.http_port, tracker_port=port,
            error_tracking=error_tracking, influx_points=influx_points)
        path = stack.write_config(
            os.path.join(tmp, f"c-{error_tracking}-{influx_points}.yaml"),
            config)
        tracker = stack.start_tracker(
            path, tmp, name=f"tracker-{error_tracking}-{influx_points}")
        client = TrackerClient(f"127.0.0.1:{port}")
        try:
            (response,) = client.report([[failure(1, server="switch-a",
                                                  instance="sw"),
                                          failure(2, server="switch-a",
                                                  instance="sw")]])
            self.assertEqual(len(response.accepted), 2)
            stats = client.error_stats()
        finally:
            client.close()
            self.assertEqual(tracker.stop(timeout=20), 0)
        return tracker, stats

    def test_switches(self):
        with tempfile.TemporaryDirectory(prefix="qfp-switch-") as tmp:
            with InfluxD(os.path.join(tmp, "influxd")) as influx:
                tracker, stats = self.run_tracker(
                    tmp, influx, error_tracking=False, influx_points=True)
                self.assertEqual(stats.total, 0)
                self.assertEqual(
                    len(stack.failure_lines(tracker.log_text())), 2)
                tracker, stats = self.run_tracker(
                    tmp, influx, error_tracking=True, influx_points=False)
                self.assertEqual(stats.total, 2)
                self.assertEqual(
                    len(stack.failure_lines(tracker.log_text())), 2)
                self.assertIn("Error counts today (UTC): Total=2",
                              tracker.log_text())
                self.assertEqual(stack.stored_points(influx), [])


class SummaryLineTest(unittest.TestCase):
    """errorTracking.logSummary: the running totals are logged at most every
    5 s (not after each failure), and the last line before the tracker
    stops carries the final totals."""

    def test_summary_is_rate_limited_and_true_at_the_end(self):
        with tempfile.TemporaryDirectory(prefix="qfp-summary-") as tmp:
            with InfluxD(os.path.join(tmp, "influxd")) as influx:
                port = procs.free_port()
                config = stack.butler_config(
                    _NoPki(), [], influx_port=influx.http_port,
                    tracker_port=port)
                path = stack.write_config(os.path.join(tmp, "c.yaml"),
                                          config)
                tracker = stack.start_tracker(path, tmp)
                client = TrackerClient(f"127.0.0.1:{port}")
                started = time.monotonic()
                try:
                    sequence = 0
                    for _ in range(6):  # about 3 s of traffic
                        requests = []
                        for _ in range(10):
                            batch = []
                            for _ in range(50):
                                sequence += 1
                                batch.append(failure(
                                    sequence, server=f"sum-{sequence % 300}",
                                    instance="summary"))
                            requests.append(batch)
                        responses = client.report(requests)
                        self.assertEqual(
                            sum(len(r.accepted) for r in responses), 500)
                        time.sleep(0.5)
                finally:
                    client.close()
                    self.assertEqual(tracker.stop(timeout=20), 0)
                elapsed = time.monotonic() - started
                summaries = [line for line in tracker.log_text().splitlines()
                             if "Error counts today (UTC):" in line]
                # One per 5 s while it ran, plus the one at shutdown; before,
                # 3000 lines (one per failure).
                self.assertGreaterEqual(len(summaries), 1)
                self.assertLessEqual(len(summaries), int(elapsed / 5) + 2)
                self.assertIn("Total=3000,", summaries[-1])
                self.assertIn('"sum-299":10', summaries[-1])


if __name__ == "__main__":
    unittest.main()
