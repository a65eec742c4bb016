"""A poller under load never reports a healthy server as failed.

One qs-poller health-checks a few hundred healthy servers plus some
black-holed ones (they listen and never accept: the poll ends in its
timeout), all served by bench/poller_scale_site.py (one asyncio process, real
HTTPS with client certificates), every INTERVAL_MS with a TIMEOUT_MS
request timeout and the default maxConcurrentPolls, through the real
tracker into a real influxd. The run lasts until every dead server has
ROUNDS timeout points stored.

A false failure is the worst output this product can give (issue 10), so:
no point and no logged failure names a healthy server, while every healthy
server was really polled in each round (the site's request log); every dead
server's points are timeouts, at most one per interval.

Sizes shrink under the sanitizers (support/procs.SANITIZED), where every poll
costs several times the CPU, so that the machine, not the poller, stays the
same; the deadlines are generous for a loaded 2-core machine.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from support import certs, procs, stack
from support.influxd import InfluxD

HEALTHY = 150 if procs.SANITIZED else 300
DEAD = 15 if procs.SANITIZED else 30
INTERVAL_MS = 6000
TIMEOUT_MS = 4000  # below the interval: a dead server is never skipped
ROUNDS = 3
NS = 1_000_000_000

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAILED = re.compile(r"failed poll: HEALTH_API server=(\S+) host=\S+ "
                    r"category=(\S+)")


class PollerLoadTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="qfp-poller-load-")
        cls.site = None
        cls.influx = None
        cls.processes = []
        try:
            cls._run()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start_site(cls):
        ready = os.path.join(cls.tmp, "site.ready")
        cls.record = os.path.join(cls.tmp, "site.jsonl")
        cls.site_log = open(os.path.join(cls.tmp, "site.log"), "w")
        cls.site = subprocess.Popen(
            [sys.executable, "-m", "bench.poller_scale_site", "--pki",
             cls.pki.directory, "--healthy", str(HEALTHY), "--dead",
             str(DEAD), "--ready-file", ready, "--record", cls.record,
             "--max-seconds", "600"],
            cwd=TESTS, stdout=cls.site_log, stderr=subprocess.STDOUT)
        procs.wait_until(
            lambda: os.path.exists(ready) or cls.site.poll() is not None,
            timeout=60, message="the scale site did not start")
        if cls.site.poll() is not None:
            raise RuntimeError("the scale site exited: see site.log")
        with open(ready, encoding="utf-8") as f:
            return json.load(f)

    @classmethod
    def _run(cls):
        cls.pki = certs.make_pki(os.path.join(cls.tmp, "pki"))
        ports = cls._start_site()
        cls.healthy = {f"ok{i}": port for i, port in enumerate(ports["healthy"])}
        cls.dead = {f"dead{i}": port for i, port in enumerate(ports["dead"])}
        cls.influx = InfluxD(os.path.join(cls.tmp, "influxd")).start()
        tracker_port = procs.free_port()
        metrics_port = procs.free_port()
        servers = [stack.server_entry(name, port) for name, port in
                   [*cls.healthy.items(), *cls.dead.items()]]
        config = stack.butler_config(
            cls.pki, servers, influx_port=cls.influx.http_port,
            tracker_port=tracker_port, health_interval_ms=INTERVAL_MS,
            request_timeout_ms=TIMEOUT_MS,
            poller_extra={"pollerId": "load",
                          "metricsListen": f"127.0.0.1:{metrics_port}"})
        # The summary line per failure is not what this test is about.
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        path = stack.write_config(os.path.join(cls.tmp, "load.yaml"), config)
        cls.tracker = stack.start_tracker(path, cls.tmp)
        cls.processes.append(cls.tracker)
        cls.poller = stack.start_poller(path, cls.tmp)
        cls.processes.append(cls.poller)
        cls.started = time.time()

        def every_dead_server_timed_out():
            counts = collections.Counter(
                p["server_name"] for p in stack.stored_points(cls.influx))
            return all(counts[name] >= ROUNDS for name in cls.dead)
        # ROUNDS rounds take (ROUNDS - 1) intervals plus one within the first
        # and one timeout: 22 s; three times that for a loaded machine.
        try:
            procs.wait_until(every_dead_server_timed_out, timeout=90,
                             interval=0.5,
                             message=f"{ROUNDS} timeouts of every dead server")
            cls.metrics = stack.scrape_metrics(metrics_port)
            cls.ended = time.time()
        finally:
            cls.exits = stack.stop_all([cls.poller])
            cls.tracker_exit = cls.tracker.stop(timeout=20)
        cls.points = stack.stored_points(cls.influx, epoch="ns")
        cls.log = cls.poller.log_text()

    @classmethod
    def tearDownClass(cls):
        for proc in cls.processes:
            proc.stop()
        if cls.site is not None:
            if cls.site.poll() is None:
                cls.site.send_signal(signal.SIGTERM)
                try:
                    cls.site.wait(15)
                except subprocess.TimeoutExpired:
                    cls.site.kill()
                    cls.site.wait()
            cls.site_log.close()
        if cls.influx is not None:
            cls.influx.stop()
        if os.environ.get("QFP_KEEP_TMP"):
            print(f"kept {cls.tmp}")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_no_healthy_server_is_ever_reported_failed(self):
        reported = sorted({p["server_name"] for p in self.points
                           if p["server_name"] in self.healthy})
        self.assertEqual(reported, [], "healthy servers stored as failed")
        logged = sorted({m.group(1) for m in FAILED.finditer(self.log)
                         if m.group(1) in self.healthy})
        self.assertEqual(logged, [], "healthy servers logged as failed")

    def test_every_healthy_server_was_polled_each_round(self):
        # Without this, "no healthy failure" could mean "no healthy poll".
        requests = collections.Counter()
        with open(self.record, encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                if self.started <= entry["time"] <= self.ended:
                    requests[entry["port"]] += 1
        # The run covers at least ROUNDS - 1 whole intervals (the last
        # dead server's last timeout comes one timeout after its due time).
        short = {name: requests[port] for name, port in self.healthy.items()
                 if requests[port] < ROUNDS - 1}
        self.assertEqual(short, {}, "healthy servers polled too rarely")

    def test_every_dead_server_gets_one_timeout_per_interval(self):
        by_server = collections.defaultdict(list)
        for point in self.points:
            by_server[point["server_name"]].append(point)
        self.assertEqual(set(by_server), set(self.dead))
        for name in self.dead:
            points = by_server[name]
            self.assertEqual({p["error_category"] for p in points},
                             {"timeout"}, name)
            times = sorted(int(p["time"]) for p in points)
            # One due time per interval, so one timeout per interval: never
            # two within half an interval (a burst or a catch-up would).
            gaps = [b - a for a, b in zip(times, times[1:])]
            self.assertTrue(all(g > INTERVAL_MS * 1_000_000 // 2
                                for g in gaps), f"{name}: gaps {gaps} ns")

    def test_metrics_count_the_same_failures(self):
        failed = sum(v for (name, _), v in self.metrics.items()
                     if name == "qfp_poller_poll_failures_total")
        started = sum(v for (name, _), v in self.metrics.items()
                      if name == "qfp_poller_polls_total")
        lateness = sum(v for (name, _), v in self.metrics.items()
                       if name == "qfp_poller_poll_start_lateness_seconds_count")
        self.assertGreaterEqual(failed, DEAD * ROUNDS)
        self.assertGreaterEqual(started, (HEALTHY + DEAD) * (ROUNDS - 1))
        # Every completed poll's start lateness is measured.
        self.assertGreaterEqual(lateness, failed)

    def test_poller_stopped_cleanly(self):
        self.assertEqual(self.exits, {"poller": 0})
        self.assertEqual(self.tracker_exit, 0)


if __name__ == "__main__":
    unittest.main()
