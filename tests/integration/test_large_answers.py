"""Large, slow and compressed answers (issue 9 §3c, §5) and the poller's
shutdown summary (§6), against a real influxd.

One run: a fake Qlik Sense site, a private influxd, one qs-error-tracker and
four qs-pollers, each with its own ``appNames.hostIP``:

* ``big``: the QRS answers a 50 MiB app list, sent slowly (over about
  8 s, longer than Butler SOS's 5 s timeout). A healthy answer: no failure,
  with the default ``appNamesTimeout``; the poller's peak RSS (VmHWM) stays
  within a few MiB of a poller that only ever sees small answers, so the
  body was never kept.
* ``bomb``: the QRS answers a gzip bomb (256 MiB of valid JSON when decoded,
  about 256 KiB on the wire) with ``maxResponseBytes`` 16 MiB: one
  ``invalid_response`` point per poll, memory bounded too. Its
  ``appNamesTimeout`` (30 s) is what ``request_timeout_ms`` reports, while
  its health checks keep ``requestTimeout``.
* ``control``: small, healthy answers everywhere: the RSS baseline.
* ``orphan``: polls a refused port and reports to a tracker that is not
  there: its summary must say that none was acknowledged and all are left.
"""

from __future__ import annotations

import os
import re
import unittest

from support import procs, stack
from support.scenario import ScenarioTestCase

BIG_MB = 50
BIG_SECONDS = 8
BOMB_DECODED_MB = 256
BOMB_CAP = 16 << 20
BOMB_APPS_TIMEOUT_MS = 30000
REQUEST_TIMEOUT_MS = 5000
# What a poller may hold beyond the control poller's peak while reading a
# 50 MiB answer (libcurl's and OpenSSL's buffers, the parser's state).
RSS_MARGIN_KIB = 8 * 1024

_SUMMARY = re.compile(
    r"qs-poller stopped: (\d+) polls, (\d+) failed; failures: (\d+) from "
    r"this run and (\d+) reloaded from earlier runs; (\d+) acknowledged by "
    r"tracker \S+, (\d+) dropped \((\d+) spool full, (\d+) not stored: spool "
    r"commit failed, (\d+) rejected by the tracker as malformed\), (.*)$")


def summary_of(log_text: str) -> re.Match:
    line = log_text.rstrip().splitlines()[-1]
    match = _SUMMARY.search(line)
    if match is None:
        raise AssertionError(f"not a shutdown summary: {line!r}")
    return match


class LargeAnswersTest(ScenarioTestCase):
    TMP_PREFIX = "qfp-large-"

    @classmethod
    def start_scenario(cls):
        cls.pollers = {}
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        cls.site = cls.start_site([
            {"name": "big", "behaviour": "healthy", "paths": {
                "/qrs/app": {"behaviour": "large_apps", "size_mb": BIG_MB,
                             "seconds": BIG_SECONDS}}},
            {"name": "bomb", "behaviour": "healthy", "paths": {
                "/qrs/app": {"behaviour": "gzip_bomb",
                             "decoded_mb": BOMB_DECODED_MB}}},
            {"name": "control", "behaviour": "healthy"},
            {"name": "down", "behaviour": "refuse"},
        ], cls.pki)
        cls.ports = cls.site.ports
        tracker_port = procs.free_port()

        def config(name, port, *, tracker=tracker_port, apps_interval=60000,
                   extra=None):
            poller = {"pollerId": f"large-{name}"}
            poller.update(extra or {})
            path = os.path.join(cls.tmp, f"{name}.yaml")
            return stack.write_config(path, stack.butler_config(
                cls.pki, [stack.server_entry(f"large-{name}", port)],
                influx_port=cls.influx.http_port, tracker_port=tracker,
                health_interval_ms=1000, request_timeout_ms=REQUEST_TIMEOUT_MS,
                app_names_host=f"127.0.0.1:{port}",
                app_names_interval_ms=apps_interval, poller_extra=poller))

        configs = {
            "big": config("big", cls.ports["big"]),
            "bomb": config("bomb", cls.ports["bomb"], apps_interval=2000,
                           extra={"maxResponseBytes": BOMB_CAP,
                                  "appNamesTimeout": BOMB_APPS_TIMEOUT_MS}),
            "control": config("control", cls.ports["control"]),
            "orphan": config("orphan", cls.ports["down"],
                             tracker=procs.free_port()),
        }
        cls.tracker = cls.started_process(
            stack.start_tracker(configs["control"], cls.tmp))
        for name, path in configs.items():
            # Every target polled at start (not at its offset within the
            # 60 s app-list interval): one app list read within the test.
            extra = ["--log_level", "debug", "--spread_polls=false"]
            if name == "orphan":
                extra += ["--shutdown_deadline_ms", "300"]
            cls.pollers[name] = cls.started_process(stack.start_poller(
                path, cls.tmp, name=f"poller-{name}", extra_args=extra))

        big_key = f"APP_NAMES_EXTRACT 127.0.0.1:{cls.ports['big']}: ok"
        bomb_apps = f"server=127.0.0.1:{cls.ports['bomb']}"

        def done():
            return (big_key in cls.pollers["big"].log_text()
                    and cls.pollers["bomb"].log_text().count(bomb_apps) >= 2
                    and len(stack.failure_lines(
                        cls.pollers["orphan"].log_text())) >= 2)

        try:
            procs.wait_until(done, timeout=BIG_SECONDS + 50, interval=0.25,
                             message="the 50 MiB app list read, two bomb "
                                     "failures, two orphan failures")
            cls.peak_kib = {name: procs.peak_rss_kib(proc.pid)
                            for name, proc in cls.pollers.items()}
            # Let the tracker write what it was given.
            procs.wait_until(
                lambda: sum(1 for p in stack.stored_points(cls.influx)
                            if p["host"] == f"127.0.0.1:{cls.ports['bomb']}")
                >= 2, timeout=20, interval=0.25,
                message="the bomb's points in influxd")
        finally:
            cls.exits = stack.stop_all(list(cls.pollers.values()))
            cls.tracker_exit = cls.tracker.stop(timeout=20)
        cls.points = stack.stored_points(cls.influx)

    def log(self, name):
        return self.pollers[name].log_text()

    # -- §5: a 50 MiB app list, slowly --------------------------------------

    def test_large_slow_app_list_is_healthy(self):
        log = self.log("big")
        self.assertEqual(stack.failure_lines(log), [], log[-3000:])
        requests = [r for r in self.site.requests("big")
                    if r["path"] == "/qrs/app"]
        self.assertEqual(len(requests), 1)
        ok = re.search(r"APP_NAMES_EXTRACT \S+: ok \(HTTP 200, (\d+) ms\)",
                       log)
        self.assertIsNotNone(ok, log[-3000:])
        # Slower than Butler SOS's 5 s request timeout: the default
        # appNamesTimeout is what let it finish.
        self.assertGreater(int(ok.group(1)), REQUEST_TIMEOUT_MS)

    @unittest.skipIf(procs.SANITIZED, "RSS under ASan is its quarantine's")
    def test_memory_stays_bounded_while_reading_50_mib(self):
        big, control = self.peak_kib["big"], self.peak_kib["control"]
        self.assertLess(big - control, RSS_MARGIN_KIB,
                        f"peak RSS big {big} KiB, control {control} KiB")
        self.assertLess(big * 1024, BIG_MB << 20,
                        "the poller's whole peak is below the body's size")

    # -- §3c: a gzip bomb ----------------------------------------------------

    def test_gzip_bomb_is_an_invalid_response_not_an_oom(self):
        host = f"127.0.0.1:{self.ports['bomb']}"
        points = [stack.point_fields(p) for p in self.points
                  if p["host"] == host]
        self.assertGreaterEqual(len(points), 2)
        for point in points:
            self.assertEqual(point, {
                "error_type": "APP_NAMES_EXTRACT", "server_name": host,
                "host": host, "error_count": 1,
                "error_category": "invalid_response",
                "error_code": "ERR_INVALID_RESPONSE", "http_status": 200,
                "request_timeout_ms": BOMB_APPS_TIMEOUT_MS,
                "request_url": f"https://{host}/qrs/app"})
        self.assertIn("larger than the cap", self.log("bomb"))
        if procs.SANITIZED:
            return  # RSS under ASan is its quarantine's
        bomb, control = self.peak_kib["bomb"], self.peak_kib["control"]
        self.assertLess(bomb - control, RSS_MARGIN_KIB,
                        f"peak RSS bomb {bomb} KiB, control {control} KiB")

    def test_each_source_has_its_own_timeout(self):
        # The bomb's engine is healthy; only its QRS fails.
        self.assertEqual(
            [line for line in stack.failure_lines(self.log("bomb"))
             if "HEALTH_API" in line], [])
        plan = stack.run_poller_once(
            os.path.join(self.tmp, "bomb.yaml"), "--check_config")
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertRegex(plan.stdout, r"HEALTH_API large-bomb\n.*\n  every "
                         rf"1000 ms, timeout {REQUEST_TIMEOUT_MS} ms")
        self.assertRegex(plan.stdout, r"APP_NAMES_EXTRACT \S+\n.*\n  every "
                         rf"2000 ms, timeout {BOMB_APPS_TIMEOUT_MS} ms")
        # Without appNamesTimeout, the QRS gets its own default, 120 s.
        plan = stack.run_poller_once(
            os.path.join(self.tmp, "big.yaml"), "--check_config")
        self.assertRegex(plan.stdout, r"APP_NAMES_EXTRACT \S+\n.*\n  every "
                         r"60000 ms, timeout 120000 ms")

    # -- §6: the summary tells the truth --------------------------------------

    def test_summary_counts_every_failure_acknowledged(self):
        for name in ("big", "bomb", "control"):
            with self.subTest(poller=name):
                log = self.log(name)
                m = summary_of(log)
                failures = len(stack.failure_lines(log))
                self.assertEqual(int(m.group(2)), failures)
                self.assertEqual(int(m.group(3)), failures)
                self.assertEqual(int(m.group(4)), 0)       # reloaded
                self.assertEqual(int(m.group(5)), failures)  # acknowledged
                self.assertEqual(int(m.group(6)), 0)       # dropped
                self.assertEqual(int(m.group(9)), 0)       # rejected
                self.assertTrue(m.group(10).startswith(
                    "every failure acknowledged by the tracker, 0 failures "
                    "left in spool"), m.group(10))
        self.assertGreaterEqual(int(summary_of(self.log("bomb")).group(2)), 2)

    def test_summary_without_a_tracker_says_all_are_left(self):
        log = self.log("orphan")
        m = summary_of(log)
        failures = len(stack.failure_lines(log))
        self.assertGreaterEqual(failures, 2)
        self.assertEqual(int(m.group(3)), failures)
        self.assertEqual(int(m.group(5)), 0)   # none acknowledged
        self.assertEqual(int(m.group(6)), 0)   # none dropped
        self.assertEqual(m.group(10), f"{failures} failures left in the memory "
                         "spool and lost (logged above)")
        self.assertIn("WARN", log.rstrip().splitlines()[-1].upper())

    def test_processes_exit_cleanly(self):
        for name, status in self.exits.items():
            with self.subTest(poller=name):
                self.assertEqual(status, 0)
        self.assertEqual(self.tracker_exit, 0)


if __name__ == "__main__":
    unittest.main()
