"""Heartbeats end to end: real poller -> gRPC -> real tracker -> influxd.

The poller polls a fake Qlik Sense site (one healthy server with two
virtual proxies, one answering 500) every second and sends a heartbeat
every second; the tracker writes poll attempts points (pollAttempts.enable)
and watches the poller for silence (missedHeartbeats: 3). Checked:
  * attempts points carry the schema the dashboards use, and their counts
    add up to exactly the polls the poller reports (after a clean stop, whose
    last heartbeat carries the last counts);
  * a clean stop (SIGTERM) is announced and is not reported as silence;
  * a killed poller (SIGKILL) becomes one POLLER point within 3 intervals
    (plus the tracker's 1 s check and its flush), logged at warn;
  * a restarted poller is logged as back, and no second point follows;
  * coverage (coverage.enable): while the poller runs no target is reported;
    once it is gone every target gets a not_polled point of its own.
"""

from __future__ import annotations

import os
import re
import time
import unittest

from support import procs, stack
from support.influxd import InfluxError
from support.scenario import ScenarioTestCase

HEALTHY = "sense-ok"
FAILING = "sense-500"
POLLER_ID = "test-poller"
ATTEMPTS = "butler_sos_poll_attempts"
INTERVAL_S = 1.0
MISSED = 3


class HeartbeatTest(ScenarioTestCase):
    TMP_PREFIX = "qfp-heartbeat-"

    @classmethod
    def start_scenario(cls):
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        cls.site = cls.start_site([
            {"name": "ok", "behaviour": "healthy"},
            {"name": "http500", "behaviour": "status", "status": 500},
        ], cls.pki)
        ports = cls.site.ports
        config = stack.butler_config(
            cls.pki,
            [stack.server_entry(HEALTHY, ports["ok"],
                                sessions_port=ports["ok"],
                                virtual_proxies=["/", "/sales"]),
             stack.server_entry(FAILING, ports["http500"])],
            influx_port=cls.influx.http_port,
            tracker_port=procs.free_port(),
            health_interval_ms=int(INTERVAL_S * 1000),
            sessions_interval_ms=int(INTERVAL_S * 1000),
            request_timeout_ms=2000,
            tracker_extra={"missedHeartbeats": MISSED,
                           "pollAttempts": {"enable": True},
                           "coverage": {"enable": True}})
        cls.config_path = stack.write_config(
            os.path.join(cls.tmp, "butler-sos.yaml"), config)
        cls.tracker = cls.started_process(
            stack.start_tracker(cls.config_path, cls.tmp), timeout=10)
        cls.pollers = []

    def start_poller(self):
        poller = self.started_process(stack.start_poller(
            self.config_path, self.tmp, name=f"poller{len(self.pollers) + 1}"))
        self.pollers.append(poller)
        return poller

    def points(self, measurement):
        try:
            return self.influx.points(measurement, stack.DB, epoch="ns")
        except InfluxError as error:
            if "database not found" in str(error):
                return []
            raise

    def poller_points(self):
        return [p for p in self.points(stack.MEASUREMENT)
                if p["error_type"] == "POLLER"]

    def not_polled_points(self):
        return [p for p in self.points(stack.MEASUREMENT)
                if p["error_category"] == "not_polled"]

    def test_attempts_silence_and_return(self):
        # 1. A poller runs for a few rounds, then stops cleanly.
        poller = self.start_poller()
        procs.wait_until(
            lambda: stack.failures_logged_for(poller.log_text(),
                                              FAILING) >= 3,
            timeout=30, message="three failed polls of the failing server")
        self.tracker.wait_for_log(
            f"poller {POLLER_ID} (instance", timeout=10)
        # Polled all along: coverage reports nothing.
        self.assertEqual(self.not_polled_points(), [])
        self.assertEqual(poller.stop(timeout=20), 0)
        self.tracker.wait_for_log("is stopping: its silence is expected",
                                  timeout=10)
        summary = re.search(r"qs-poller stopped: (\d+) polls, (\d+) failed",
                            poller.log_text())
        self.assertIsNotNone(summary, poller.log_text()[-3000:])
        failed_polls = int(summary.group(2))
        self.assertGreaterEqual(failed_polls, 3)

        # Every failure point and every count reaches influxd (flush 200 ms).
        def settled():
            failures = [p for p in self.points(stack.MEASUREMENT)
                        if p["error_type"] == "HEALTH_API"]
            attempts = self.points(ATTEMPTS)
            return (len(failures) == failed_polls and
                    sum(p["failed"] for p in attempts) == failed_polls)
        procs.wait_until(settled, timeout=15,
                         message="attempts counts match the failed polls")
        attempts = self.points(ATTEMPTS)
        self.assertEqual(
            self.influx.field_types(ATTEMPTS, stack.DB),
            {"attempted": "integer", "failed": "integer"})
        self.assertEqual(
            sorted(self.influx.tag_keys(ATTEMPTS, stack.DB)),
            ["error_type", "host", "poller_id", "server_name",
             "virtual_proxy"])
        by_target = {}
        for p in attempts:
            self.assertEqual(p["poller_id"], POLLER_ID)
            key = (p["error_type"], p["server_name"], p["virtual_proxy"])
            total = by_target.setdefault(key, [0, 0])
            total[0] += p["attempted"]
            total[1] += p["failed"]
        self.assertEqual(set(by_target), {
            ("HEALTH_API", HEALTHY, None), ("HEALTH_API", FAILING, None),
            ("PROXY_API", HEALTHY, "/"), ("PROXY_API", HEALTHY, "/sales")})
        # The failing server failed every poll; the healthy one none.
        attempted, failed = by_target[("HEALTH_API", FAILING, None)]
        self.assertEqual((attempted, failed), (failed_polls, failed_polls))
        for key, (attempted, failed) in by_target.items():
            if key[1] == HEALTHY:
                self.assertGreaterEqual(attempted, 2, key)
                self.assertEqual(failed, 0, key)
        # The poller announced its stop: no silence follows.
        time.sleep((MISSED + 1.5) * INTERVAL_S)
        self.assertEqual(self.poller_points(), [])
        self.assertNotIn("is silent", self.tracker.log_text())

        # 2. It comes back, then is killed: one POLLER point.
        poller = self.start_poller()
        self.tracker.wait_for_log(f"poller {POLLER_ID} resumed", timeout=10)
        time.sleep(1.5 * INTERVAL_S)  # a beat or two as a known poller
        poller.kill9()
        killed_at = time.monotonic()
        procs.wait_until(lambda: len(self.poller_points()) >= 1, timeout=15,
                         message="a POLLER point after SIGKILL")
        detected_after = time.monotonic() - killed_at
        # K intervals, then the tracker's once-a-second check and its flush.
        self.assertLess(detected_after, MISSED * INTERVAL_S + 2.5)
        self.assertGreater(detected_after, (MISSED - 1) * INTERVAL_S)
        [point] = self.poller_points()
        self.assertEqual(point["server_name"], POLLER_ID)
        self.assertEqual(point["host"], POLLER_ID)
        self.assertEqual(point["error_category"], "silent")
        self.assertEqual(point["error_count"], 1)  # a float, as on v1
        self.assertIsNone(point["request_url"])
        self.assertRegex(self.tracker.log_text(),
                         rf"warning +\[qs-error-tracker\] poller {POLLER_ID} is silent")

        # 3. It restarts: the tracker logs its return, and nothing more is
        # written for that silence.
        self.start_poller()
        self.tracker.wait_for_log(f"poller {POLLER_ID} is back", timeout=10)
        time.sleep((MISSED + 1) * INTERVAL_S)
        self.assertEqual(len(self.poller_points()), 1)
        self.assertEqual(self.tracker.log_text().count(
            f"poller {POLLER_ID} is silent"), 1)

        # Coverage: while no poller ran, every target was reported, with
        # its own tags.
        ports = self.site.ports
        reported = {(p["error_type"], p["server_name"], p["host"],
                     p["virtual_proxy"])
                    for p in self.not_polled_points()}
        self.assertEqual(reported, {
            ("HEALTH_API", HEALTHY, f"127.0.0.1:{ports['ok']}", None),
            ("HEALTH_API", FAILING, f"127.0.0.1:{ports['http500']}", None),
            ("PROXY_API", HEALTHY, f"127.0.0.1:{ports['ok']}", "/"),
            ("PROXY_API", HEALTHY, f"127.0.0.1:{ports['ok']}", "/sales")})
        for p in self.not_polled_points():
            self.assertEqual(p["error_count"], 1)
            self.assertIsNone(p["request_url"])


if __name__ == "__main__":
    unittest.main()
