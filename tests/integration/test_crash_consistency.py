"""Crash consistency of the tracker's SQLite queue (issue 8): a tracker killed
with SIGKILL at random moments, again and again, loses no failure it
acknowledged and stores none twice.

Real processes on loopback: a private influxd and qs-error-tracker with a
walDirectory (its queue, failures.db). At least 8 producers written in Python
stream failures over the public gRPC API at the same time, each as its own
poller (poller_id, instance_id, increasing sequences), recording exactly
which ids every answer acknowledged. The tracker is killed at least 20 times
at random moments (some while it starts and reloads its queue, most while
the streams run) and restarted on the same directory each time; the
producers reconnect and resend what was not acknowledged, as a poller does.

At the end (tracker running, influxd up) the queue must drain, and influxd
must hold every failure any producer saw acknowledged exactly once: each
failure has its own series and timestamp (so InfluxDB cannot merge two
failures) and its own error_code, by which the stored points are counted
(a re-sent failure written again is the same point, which InfluxDB stores
once; a second point for it would show up as a count of 2).

The seed (printed; QFP_CRASH_SEED repeats one) fixes the kill schedule and
the producers' batch sizes and pauses; how threads and processes interleave
still varies from run to run.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import tempfile
import threading
import time
import types
import unittest

from support import procs, stack
from support.influxd import InfluxD

PRODUCERS = 8
KILLS = 30
# A quarter of the kills land within 0.3 s of the start (half of those
# within 0.03 s: the tracker may still be opening its queue, or not yet
# listening; the others while it writes its reloaded backlog and producers
# reconnect); the rest 0.2 to 1.5 s after it listens, while streams run.
EARLY_KILL_SHARE = 0.25
STREAM_DEADLINE_S = 30    # a stream is recycled after this (never reached)
DRAIN_TIMEOUT_S = 90      # producers getting their last acknowledgements
QUEUE_EMPTY_TIMEOUT_S = 90
NEW_PER_REQUEST = (1, 40)  # new failures per request, uniform
PAUSE_S = (0.002, 0.03)     # between two requests of one producer
MAX_BATCH = 1000


class Producer(threading.Thread):
    """One poller-like producer: new failures with increasing sequences, a
    synchronous stream (one request, its answer, the next request), and on
    a broken stream a reconnect that resends everything unacknowledged."""

    def __init__(self, index: int, address: str, seed: int, base_ns: int,
                 generating: threading.Event, deadline: list):
        super().__init__(name=f"producer-{index}", daemon=True)
        self.index = index
        self.address = address
        self.rng = random.Random(seed * 1000 + index)
        self.base_ns = base_ns
        self.generating = generating
        self.deadline = deadline  # [monotonic time], set when draining
        self.poller_id = f"crash-producer-{index:02d}"
        self.instance_id = f"seed-{seed}"
        self.next_sequence = 1
        self.unacked: dict[int, object] = {}  # sequence -> PollFailure
        self.acked: set[int] = set()
        self.requests = 0
        self.streams = 0
        self.broken_streams = 0
        self.resent = 0
        self.refused = 0
        self.duplicate_acks = 0
        self.anomalies: list[str] = []
        self.error: BaseException | None = None

    def run(self):
        try:
            self._run()
        except BaseException as error:  # reported by the test
            self.error = error

    def done(self) -> bool:
        return not self.generating.is_set() and not self.unacked

    def _run(self):
        import grpc
        channel = stack.reconnecting_channel(self.address)
        try:
            while not self.done():
                if self.deadline[0] and time.monotonic() > self.deadline[0]:
                    return
                self.streams += 1
                stream = stack.FailureStream(channel, STREAM_DEADLINE_S)
                try:
                    self._drive(stream)
                except (grpc.RpcError, stack.StreamEnded):
                    self.broken_streams += 1
                    time.sleep(self.rng.uniform(0.01, 0.1))
                finally:
                    stream.close()
        finally:
            channel.close()

    def _drive(self, stream):
        first = True
        while not self.done():
            if self.deadline[0] and time.monotonic() > self.deadline[0]:
                return
            batch = self._next_batch(resend=first)
            first = False
            if not batch:
                time.sleep(0.01)
                continue
            self.requests += 1
            answer = stream.send(batch)
            self._take(batch, answer)
            time.sleep(self.rng.uniform(*PAUSE_S))

    def _next_batch(self, resend: bool) -> list:
        # Everything unacknowledged goes first: after a broken stream that
        # is the request that got no answer, plus earlier refusals.
        batch = sorted(self.unacked.items())[:MAX_BATCH]
        if resend:
            self.resent += len(batch)
        room = MAX_BATCH - len(batch)
        if self.generating.is_set() and room > 0:
            for _ in range(min(room, self.rng.randint(*NEW_PER_REQUEST))):
                sequence = self.next_sequence
                self.next_sequence += 1
                message = stack.unique_failure(
                    self.index, sequence, base_ns=self.base_ns,
                    poller=self.poller_id, instance=self.instance_id)
                self.unacked[sequence] = message
                batch.append((sequence, message))
        return [message for _, message in batch]

    def _take(self, batch, answer):
        sent = {m.id.sequence for m in batch}
        answered = []
        for failure_id in answer.accepted:
            answered.append(failure_id.sequence)
            if (failure_id.poller_id, failure_id.instance_id) != (
                    self.poller_id, self.instance_id):
                self.anomalies.append(f"acknowledged a foreign id {failure_id}")
                continue
            sequence = failure_id.sequence
            if sequence in self.unacked:
                del self.unacked[sequence]
                self.acked.add(sequence)
            elif sequence in self.acked:
                self.duplicate_acks += 1
            else:
                self.anomalies.append(f"acknowledged unsent {sequence}")
        for refusal in answer.refused:
            answered.append(refusal.id.sequence)
            self.refused += 1
            if not refusal.reason:
                self.anomalies.append("a refusal without a reason")
        if sorted(answered) != sorted(sent):
            self.anomalies.append(
                f"request of {len(sent)} failures answered for "
                f"{len(answered)} ({len(set(answered) ^ sent)} differ)")


class CrashConsistencyTest(unittest.TestCase):

    def setUp(self):
        self.started = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="qfp-crash-")
        self.trackers: list[procs.Proc] = []
        self.producers: list[Producer] = []
        self.influx = InfluxD(os.path.join(self.tmp, "influxd"))
        # Registered before anything starts: runs even when setUp fails.
        self.addCleanup(self._cleanup)
        self.influx.start()

    def _cleanup(self):
        for producer in self.producers:
            producer.deadline[0] = time.monotonic()  # stop at once
        for producer in self.producers:
            producer.join(timeout=STREAM_DEADLINE_S + 5)
        for tracker in self.trackers:
            tracker.stop(timeout=5)
        self.influx.stop()
        if not os.environ.get("QFP_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"\n  kept {self.tmp}", flush=True)

    def start_tracker(self, config: str, wait: bool) -> procs.Proc:
        tracker = stack.start_tracker_only(
            config, self.tmp, name=f"tracker-{len(self.trackers):02d}",
            cwd=self.tmp)
        self.trackers.append(tracker)
        if wait:
            tracker.wait_for_log("listening on", timeout=30)
        return tracker

    def queue_records_metric(self, port: int) -> float | None:
        try:
            metrics = stack.scrape_metrics(port, timeout=5)
        except OSError:
            return None
        return metrics.get(("qfp_tracker_queue_records", ()))

    def test_acknowledged_failures_survive_repeated_sigkill(self):
        seed = int(os.environ.get("QFP_CRASH_SEED")
                   or random.SystemRandom().randrange(1 << 31))
        print(f"\n  seed {seed} (QFP_CRASH_SEED={seed} repeats this run)",
              flush=True)
        rng = random.Random(seed)
        tracker_port = procs.free_port()
        metrics_port = procs.free_port()
        wal_dir = os.path.join(self.tmp, "wal")
        # The tracker reads no certificates; the config wants the keys.
        no_pki = types.SimpleNamespace(client_cert="", client_key="",
                                       root_ca="")
        config = stack.butler_config(
            no_pki, [], influx_port=self.influx.http_port,
            tracker_port=tracker_port,
            tracker_extra={"walDirectory": wal_dir,
                           "metricsListen": f"127.0.0.1:{metrics_port}"})
        # A summary line per failure would only slow the tracker down.
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        config_path = stack.write_config(
            os.path.join(self.tmp, "butler-sos.yaml"), config)

        tracker = self.start_tracker(config_path, wait=True)
        generating = threading.Event()
        generating.set()
        deadline = [0.0]
        base_ns = (int(time.time()) - 3600) * 1_000_000_000
        self.producers = [
            Producer(i, f"127.0.0.1:{tracker_port}", seed, base_ns,
                     generating, deadline)
            for i in range(PRODUCERS)]
        for producer in self.producers:
            producer.start()

        # -- SIGKILL at random moments, restart on the same directory -----
        early_kills = 0
        before_listening = 0
        acked_at_kill = []
        # Which kills are early: a fixed share, at random places.
        early_flags = ([True] * int(KILLS * EARLY_KILL_SHARE)
                       + [False] * (KILLS - int(KILLS * EARLY_KILL_SHARE)))
        rng.shuffle(early_flags)
        for early in early_flags:
            if early:
                time.sleep(rng.uniform(0.0, 0.03) if rng.random() < 0.5
                           else rng.uniform(0.03, 0.3))
                early_kills += 1
                if "listening on" not in tracker.log_text():
                    before_listening += 1
            else:
                if not tracker.running or "listening on" not in \
                        tracker.log_text():
                    tracker.wait_for_log("listening on", timeout=30)
                time.sleep(rng.uniform(0.2, 1.5))
            # It must still run: it is only ever stopped by this test.
            self.assertTrue(tracker.running,
                            f"{tracker.name} exited by itself "
                            f"({tracker.returncode}):\n"
                            f"{tracker.log_text()[-3000:]}")
            tracker.kill9()
            acked_at_kill.append(sum(len(p.acked) for p in self.producers))
            for producer in self.producers:
                self.assertIsNone(producer.error, producer.name)
            time.sleep(rng.uniform(0.0, 0.3))  # down for a moment
            tracker = self.start_tracker(config_path, wait=False)
        tracker.wait_for_log("listening on", timeout=30)
        # Acknowledgements kept coming between the kills.
        self.assertGreater(acked_at_kill[-1], acked_at_kill[0])

        # -- drain: no new failures, every unacknowledged one resent -------
        generating.clear()
        deadline[0] = time.monotonic() + DRAIN_TIMEOUT_S
        for producer in self.producers:
            producer.join(timeout=DRAIN_TIMEOUT_S + STREAM_DEADLINE_S)
            self.assertFalse(producer.is_alive(), producer.name)
            self.assertIsNone(producer.error, producer.name)
        self.assertTrue(tracker.running, tracker.log_text()[-3000:])
        unanswered = {p.name: len(p.unacked) for p in self.producers
                      if p.unacked}
        self.assertEqual(unanswered, {},
                         f"failures never acknowledged within "
                         f"{DRAIN_TIMEOUT_S} s")
        anomalies = [f"{p.name}: {a}" for p in self.producers
                     for a in p.anomalies]
        self.assertEqual(anomalies[:20], [])

        # -- the queue drains into influxd ---------------------------------
        procs.wait_until(
            lambda: self.queue_records_metric(metrics_port) == 0,
            QUEUE_EMPTY_TIMEOUT_S, interval=0.25,
            message="qfp_tracker_queue_records == 0")
        self.assertEqual(tracker.stop(timeout=30), 0,
                         tracker.log_text()[-3000:])
        self.assertIn("every point written", tracker.log_text())
        self.assertEqual(stack.queue_totals(wal_dir), (0, 0))

        # -- exactly once ---------------------------------------------------
        expected = {}  # error_code -> (server_name, time)
        for p in self.producers:
            for sequence in p.acked:
                expected[stack.failure_code(p.index, sequence)] = (
                    f"producer-{p.index:02d}",
                    stack.point_time_for(sequence, base_ns))
        rows = stack.stored_columns(self.influx, "error_code", "server_name")
        per_code = collections.Counter(code for _, code, _ in rows)
        missing = sorted(set(expected) - set(per_code))
        doubled = {code: n for code, n in per_code.items() if n > 1}
        unexpected = sorted(set(per_code) - set(expected))
        misplaced = sorted(code for time_ns, code, server in rows
                           if code in expected
                           and expected[code] != (server, time_ns))
        self.assertEqual(missing[:20], [],
                         f"{len(missing)} acknowledged failures missing")
        self.assertEqual(doubled, {}, "failures stored more than once")
        self.assertEqual(unexpected[:20], [],
                         f"{len(unexpected)} points no producer sent")
        self.assertEqual(misplaced[:20], [],
                         "points with another series or time than sent")
        self.assertEqual(len(rows), len(expected))

        # No commit ever failed: a crash is not a disk error.
        for proc in self.trackers:
            self.assertNotIn("commit(s) failed", proc.log_text(), proc.name)

        reloaded = [int(m.group(3)) for proc in self.trackers
                    for m in [stack.QUEUE_OPENED.search(proc.log_text())]
                    if m]
        duration = time.monotonic() - self.started
        print(f"  {KILLS} SIGKILLs ({early_kills} within 0.3 s of a start, "
              f"{before_listening} before it listened), "
              f"{len(self.trackers)} tracker starts; "
              f"{PRODUCERS} producers, "
              f"{sum(p.requests for p in self.producers)} requests, "
              f"{sum(p.streams for p in self.producers)} streams "
              f"({sum(p.broken_streams for p in self.producers)} broken); "
              f"{len(expected)} failures acknowledged, "
              f"{sum(p.resent for p in self.producers)} resent after a "
              f"broken stream, "
              f"{sum(p.duplicate_acks for p in self.producers)} "
              f"acknowledged twice, "
              f"{sum(p.refused for p in self.producers)} refused; "
              f"records reloaded at starts: max {max(reloaded, default=0)}, "
              f"total {sum(reloaded)}; all {len(rows)} in influxd exactly "
              f"once; {duration:.1f} s", flush=True)


if __name__ == "__main__":
    unittest.main()
