"""Polls run concurrently: a server that never answers delays nobody else.

One run: 20 black-holed servers (connect succeeds, TLS never starts), one
server that refuses connections, one that sends its answer a byte a second
(slower than the timeout) and one healthy server, all health-checked by one
qs-poller every 3000 ms with a 2000 ms request timeout, through the real
tracker into a real influxd. A second poller polls one more black hole every
1000 ms with a 2500 ms timeout: its target is still in flight when the next
two rounds are due, which it must skip.

The assertions use the points' own timestamps (the time of the failure) and
the pollers' debug log (one "GET" line per poll started), never the test's
wall clock.
"""

from __future__ import annotations

import os
import re
import unittest

from support import procs, stack
from support.scenario import ScenarioTestCase

BLACKHOLES = [f"bh-{i:02d}" for i in range(20)]
REFUSED = "refused"
SLOW = "slow-body"
HEALTHY = "healthy"

INTERVAL_MS = 3000
TIMEOUT_MS = 2000
ROUNDS = 4  # complete rounds to wait for

SKIP_SERVER = "bh-skip"
SKIP_INTERVAL_MS = 1000
SKIP_TIMEOUT_MS = 2500

NS = 1_000_000_000
MS = 1_000_000

OK_LINE = re.compile(r" HEALTH_API (\S+): ok \(HTTP 200, (\d+) ms\)")


class ConcurrencyTest(ScenarioTestCase):
    TMP_PREFIX = "qfp-concurrency-"

    @classmethod
    def start_scenario(cls):
        cls.pki = cls.make_pki()
        cls.influx = cls.start_influxd()
        endpoints = [{"name": name, "behaviour": "blackhole"}
                     for name in [*BLACKHOLES, SKIP_SERVER]]
        endpoints += [{"name": REFUSED, "behaviour": "refuse"},
                      {"name": SLOW, "behaviour": "slow_body",
                       "duration": 10},
                      {"name": HEALTHY, "behaviour": "healthy"}]
        cls.site = cls.start_site(endpoints, cls.pki)
        ports = cls.site.ports
        tracker_port = procs.free_port()

        servers = [stack.server_entry(name, ports[name])
                   for name in [*BLACKHOLES, REFUSED, SLOW, HEALTHY]]
        config = stack.butler_config(
            cls.pki, servers, influx_port=cls.influx.http_port,
            tracker_port=tracker_port, health_interval_ms=INTERVAL_MS,
            request_timeout_ms=TIMEOUT_MS,
            poller_extra={"pollerId": "concurrency"})
        path = stack.write_config(os.path.join(cls.tmp, "main.yaml"), config)
        skip_config = stack.butler_config(
            cls.pki, [stack.server_entry(SKIP_SERVER, ports[SKIP_SERVER])],
            influx_port=cls.influx.http_port, tracker_port=tracker_port,
            health_interval_ms=SKIP_INTERVAL_MS,
            request_timeout_ms=SKIP_TIMEOUT_MS,
            poller_extra={"pollerId": "concurrency-skip"})
        skip_path = stack.write_config(os.path.join(cls.tmp, "skip.yaml"),
                                       skip_config)

        cls.tracker = cls.started_process(stack.start_tracker(path, cls.tmp))
        # In rounds (every target at once, not spread over the interval):
        # the assertions compare the servers of one round.
        debug = ["--log_level", "debug", "--spread_polls=false"]
        cls.poller = cls.started_process(stack.start_poller(
            path, cls.tmp, name="poller", extra_args=debug))
        cls.skip_poller = cls.started_process(stack.start_poller(
            skip_path, cls.tmp, name="poller-skip", extra_args=debug))

        def rounds_stored():
            counts = {}
            for point in stack.stored_points(cls.influx):
                name = point["server_name"]
                counts[name] = counts.get(name, 0) + 1
            return all(counts.get(name, 0) >= ROUNDS
                       for name in [*BLACKHOLES, REFUSED, SLOW])
        # ROUNDS rounds take (ROUNDS - 1) * 3 s + 2 s; generous for a loaded
        # machine.
        try:
            procs.wait_until(rounds_stored, timeout=60, interval=0.25,
                             message=f"{ROUNDS} rounds of points")
        finally:
            cls.exits = stack.stop_all([cls.poller, cls.skip_poller])
            cls.tracker_exit = cls.tracker.stop(timeout=20)
        cls.points = stack.stored_points(cls.influx, epoch="ns")
        cls.log = cls.poller.log_text()
        cls.skip_log = cls.skip_poller.log_text()

    # -- helpers -------------------------------------------------------------

    def times_of(self, server):
        return sorted(p["time"] for p in self.points
                      if p["server_name"] == server)

    def rounds(self):
        """Rounds the main poller started: its polls of the refusing
        server (one per round, never skipped: it fails at once)."""
        return stack.polls_completed_for(self.log, f"HEALTH_API {REFUSED}")

    # -- tests -------------------------------------------------------------------

    def test_refused_point_long_before_the_timeouts_of_its_round(self):
        """In every round the refusing server's failure is stamped at least
        1 s before the first black-holed timeout of that round, i.e. less
        than 1 s after the round began, although 20 polls of that round were
        hanging; the timeouts all follow about TIMEOUT_MS later."""
        refused = self.times_of(REFUSED)
        self.assertGreaterEqual(len(refused), ROUNDS)
        for index, refused_at in enumerate(refused):
            round_points = [self.times_of(name)[index]
                            for name in BLACKHOLES
                            if len(self.times_of(name)) > index]
            self.assertEqual(len(round_points), len(BLACKHOLES),
                             f"round {index}")
            with self.subTest(round=index):
                self.assertLess(refused_at, min(round_points) - 1 * NS)
                self.assertLess(max(round_points) - refused_at,
                                (TIMEOUT_MS + 1000) * MS)

    def test_each_blackholed_server_one_timeout_point_per_round(self):
        rounds = self.rounds()
        self.assertGreaterEqual(rounds, ROUNDS)
        for name in BLACKHOLES:
            with self.subTest(server=name):
                self.assertEqual(stack.polls_completed_for(
                    self.log, f"HEALTH_API {name}"), rounds)
                points = [p for p in self.points if p["server_name"] == name]
                self.assertEqual(len(points), rounds)
                self.assertEqual({(p["error_category"], p["error_code"])
                                  for p in points},
                                 {("timeout", "ECONNABORTED")})
                self.assertEqual({p["request_timeout_ms"] for p in points},
                                 {TIMEOUT_MS})
                times = self.times_of(name)
                for earlier, later in zip(times, times[1:]):
                    self.assertAlmostEqual((later - earlier) / MS,
                                           INTERVAL_MS, delta=700)

    def test_refused_server_one_point_per_round(self):
        points = [p for p in self.points if p["server_name"] == REFUSED]
        self.assertEqual(len(points), self.rounds())
        for point in points:
            self.assertEqual(point["error_category"], "connection_refused")

    def test_no_round_skipped_when_timeout_is_below_interval(self):
        self.assertNotIn("skipping this round", self.log)

    def test_no_poll_cancelled_at_shutdown(self):
        """Polls in flight at SIGTERM finish within their timeout; none
        runs long enough to be cancelled."""
        self.assertNotIn("poll cancelled at shutdown", self.log)
        self.assertNotIn("poll cancelled at shutdown", self.skip_log)

    def test_slow_body_times_out_once_per_round(self):
        points = [p for p in self.points if p["server_name"] == SLOW]
        self.assertEqual(len(points), self.rounds())
        self.assertEqual({(p["error_category"], p["error_code"])
                          for p in points}, {("timeout", "ECONNABORTED")})

    def test_slow_body_does_not_delay_others(self):
        """The healthy server's poll completes in well under a second each
        round while the slow body dribbles (and the refused point stays
        prompt, see above)."""
        elapsed = [int(ms) for name, ms in OK_LINE.findall(self.log)
                   if name == HEALTHY]
        self.assertEqual(len(elapsed), self.rounds())
        for ms in elapsed:
            self.assertLess(ms, 1000)
        self.assertEqual([p for p in self.points
                          if p["server_name"] == HEALTHY], [])

    def test_busy_target_skipped_not_polled_twice(self):
        """Interval 1000 ms, timeout 2500 ms: each poll spans two more due
        times, both skipped with a log line; every poll started gives one
        timeout point, at least the timeout apart."""
        started = stack.polls_completed_for(
            self.skip_log, f"HEALTH_API {SKIP_SERVER}")
        skipped = self.skip_log.count(
            f"HEALTH_API {SKIP_SERVER}: previous poll still running")
        self.assertGreaterEqual(started, 2)
        self.assertGreaterEqual(skipped, 2 * (started - 1))
        times = self.times_of(SKIP_SERVER)
        self.assertEqual(len(times), started)
        for earlier, later in zip(times, times[1:]):
            self.assertGreaterEqual(later - earlier, SKIP_TIMEOUT_MS * MS)

    def test_every_failure_stored_and_processes_exit_cleanly(self):
        for name, status in self.exits.items():
            with self.subTest(process=name):
                self.assertEqual(status, 0)
        self.assertEqual(self.tracker_exit, 0)
        logged = (len(stack.failure_lines(self.log))
                  + len(stack.failure_lines(self.skip_log)))
        self.assertEqual(len(self.points), logged)


if __name__ == "__main__":
    unittest.main()
