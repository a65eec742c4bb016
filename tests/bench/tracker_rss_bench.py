#!/usr/bin/python3
"""Resident memory of qs-error-tracker with a large backlog (issue 8).

Goals: tracker RSS <= 40 MiB with 1,000,000 failures waiting (InfluxDB
down), and idle RSS <= 40 MiB after 1,000,000 failures were accepted and
written. Three figures per run, each as VmRSS from /proc/PID/status:

  baseline  a freshly started tracker, empty queue (walDirectory set, a real
            influxd), idle 3 s;
  waiting   peak RSS, sampled every 100 ms for 10 s from the tracker's start,
            when its walDirectory already holds N failures and influxdbConfig
            points at a closed loopback port. The queue is filled fast: the
            tracker is started once on the directory (it creates the schema)
            and stopped with SIGTERM, then N rows go straight into
            failures.db with Python's sqlite3 in one transaction (payload: a
            line like tests/golden/failure_points_v1.txt's first, each with
            its own timestamp);
  after     idle RSS (3 s) after N failures were sent over gRPC by
            --producers concurrent processes (batches of --batch, unique ids,
            requests serialized before the clock starts), acknowledged, and
            written to a real influxd (qfp_tracker_queue_records 0 and
            influxd's COUNT equal to N).

Each figure is printed as min / median / max over --runs runs, with its ratio
to the baseline of the same run and against the 40 MiB goal; a figure over
the goal is followed by where the memory is (/proc/PID/smaps by kind of
mapping). Every process started here is stopped, also on error or Ctrl-C.

    /usr/bin/python3 tests/bench/tracker_rss_bench.py                # 1M, 3 runs
    /usr/bin/python3 tests/bench/tracker_rss_bench.py --failures 100000 --runs 1

Binaries come from $QFP_BIN_DIR (default <repo>/build); the tracker binary
is copied into the run's temporary directory first, so a rebuild during the
benchmark does not change what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))

from support import certs, procs, stack  # noqa: E402
from support.influxd import InfluxD  # noqa: E402
from bench.figures import ratio_spread, spread  # noqa: E402
from bench.proc_memory import (  # noqa: E402
    linked_libraries, memory_breakdown, proc_status)

GOAL_MIB = 40.0
MIB = 1024 * 1024
TRACKER_QUEUE_PURPOSE = "qs-error-tracker queue"
GOLDEN = TESTS_DIR / "golden" / "failure_points_v1.txt"
SERVERS = 10                    # failures are spread over sense0..sense9

BASELINE_IDLE_S = 3.0
WAITING_SAMPLE_S = 10.0
SAMPLE_INTERVAL_S = 0.1
AFTER_IDLE_S = 3.0
TRACKER_START_TIMEOUT_S = 30.0
PRODUCER_READY_TIMEOUT_S = 300.0
SEND_TIMEOUT_S = 900.0
DRAIN_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 20.0


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# /proc readings
# --------------------------------------------------------------------------

def rss_mib(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def log_tail(path: str, size: int = 3000) -> str:
    """The end of a (possibly huge) log file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class Run:
    """One run's processes and files; stop_all() stops whatever is left."""

    def __init__(self, root: str, pki, tracker_bin_dir: str):
        self.root = root
        self.pki = pki
        self.tracker_bin_dir = tracker_bin_dir
        self.trackers: list[procs.Proc] = []
        self.producers: list[subprocess.Popen] = []
        self.influx: InfluxD | None = None

    def stop_all(self) -> None:
        for popen in self.producers:
            if popen.poll() is None:
                popen.kill()
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.trackers:
            proc.stop(timeout=STOP_TIMEOUT_S)
        if self.influx is not None:
            self.influx.stop()

    def tracker_config(self, name: str, *, influx_port: int,
                       wal_dir: str, metrics_port: int,
                       failures: int) -> str:
        tracker = {"walDirectory": wal_dir,
                   "metricsListen": f"127.0.0.1:{metrics_port}"}
        if failures > 1_000_000:   # beyond the defaults; else keep them
            tracker["maxBufferedPoints"] = failures
            tracker["walMaxBytes"] = max(1 << 30, failures * 1024)
        config = stack.butler_config(
            self.pki, [], influx_port=influx_port,
            tracker_port=procs.free_port(), tracker_extra=tracker)
        # As in test_durability: a summary line per failure only slows down.
        config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
        return stack.write_config(os.path.join(self.root, f"{name}.yaml"),
                                  config)

    def spawn_tracker(self, config: str, name: str) -> procs.Proc:
        """Starts the tracker without waiting (sampling starts at once)."""
        proc = procs.Proc([os.path.join(self.tracker_bin_dir,
                                        "qs-error-tracker"),
                           "--config", config, "--shutdown_deadline_ms=2000"],
                          name=name, log_dir=self.root)
        self.trackers.append(proc)
        return proc.start()

    def wait_listening(self, proc: procs.Proc) -> None:
        def listening():
            if "listening on" in log_tail(proc.log_path, 200_000):
                return True
            if not proc.running:
                raise BenchError(f"{proc.name} exited ({proc.returncode}) "
                                 f"at start:\n{log_tail(proc.log_path)}")
            return False
        procs.wait_until(listening, TRACKER_START_TIMEOUT_S, interval=0.05,
                         message=f"{proc.name} listening")

    def stop_tracker(self, proc: procs.Proc) -> None:
        status = proc.stop(timeout=STOP_TIMEOUT_S)
        if status != 0:
            raise BenchError(f"{proc.name} exited with {status}:\n"
                             f"{log_tail(proc.log_path)}")


def metric(port: int, name: str) -> float | None:
    samples = stack.scrape_metrics(port, timeout=5)
    values = [v for (n, _), v in samples.items() if n == name]
    return sum(values) if values else None


def golden_line() -> str:
    for line in GOLDEN.read_text().splitlines():
        if line and not line.startswith("#"):
            return line
    raise BenchError(f"no line in {GOLDEN}")


def fill_queue(db_path: str, failures: int, base_ns: int) -> float:
    """Inserts `failures` rows into the tracker's queue in one transaction;
    returns the seconds it took."""
    line = golden_line()
    head, _, _ = line.rpartition(" ")   # the line without its timestamp
    heads = [head.replace("server_name=sense1", f"server_name=sense{s}")
             for s in range(SERVERS)]
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    con = sqlite3.connect(db_path, timeout=30)
    try:
        purpose = con.execute("SELECT value FROM queue_meta WHERE key = "
                              "'purpose'").fetchone()
        if purpose is None or purpose[0] != TRACKER_QUEUE_PURPOSE:
            raise BenchError(f"{db_path}: purpose {purpose!r}, expected "
                             f"{TRACKER_QUEUE_PURPOSE!r}")
        first = con.execute("SELECT coalesce(max(id), 0) FROM failures"
                            ).fetchone()[0] + 1
        with con:   # one transaction
            con.executemany(
                "INSERT INTO failures(id, enqueued_at_ms, payload) "
                "VALUES (?, ?, ?)",
                ((first + i, now_ms,
                  f"{heads[i % SERVERS]} {base_ns + i * 1000}".encode())
                 for i in range(failures)))
    finally:
        con.close()   # checkpoints the WAL into failures.db
    return time.monotonic() - started


# --------------------------------------------------------------------------
# The three measurements
# --------------------------------------------------------------------------

def measure_baseline(run: Run, failures: int) -> dict:
    metrics_port = procs.free_port()
    config = run.tracker_config(
        "baseline", influx_port=run.influx.http_port,
        wal_dir=os.path.join(run.root, "baseline-wal"),
        metrics_port=metrics_port, failures=failures)
    tracker = run.spawn_tracker(config, "tracker-baseline")
    run.wait_listening(tracker)
    time.sleep(BASELINE_IDLE_S)
    if not tracker.running:
        raise BenchError(f"baseline tracker exited:\n"
                         f"{log_tail(tracker.log_path)}")
    result = {"rss": rss_mib(tracker.pid),
              "breakdown": memory_breakdown(tracker.pid)}
    run.stop_tracker(tracker)
    return result


def measure_waiting(run: Run, failures: int) -> dict:
    wal_dir = os.path.join(run.root, "waiting-wal")
    closed_port = procs.free_port()    # nothing listens there
    metrics_port = procs.free_port()
    config = run.tracker_config("waiting", influx_port=closed_port,
                                wal_dir=wal_dir, metrics_port=metrics_port,
                                failures=failures)
    # First start: the tracker creates failures.db and its schema.
    first = run.spawn_tracker(config, "tracker-waiting-init")
    run.wait_listening(first)
    run.stop_tracker(first)
    base_ns = (int(time.time()) - 3600) * 1_000_000_000
    fill_s = fill_queue(os.path.join(wal_dir, "failures.db"), failures,
                        base_ns)
    db_mib = sum(os.path.getsize(os.path.join(wal_dir, name))
                 for name in os.listdir(wal_dir)) / MIB

    tracker = run.spawn_tracker(config, "tracker-waiting")
    started = time.monotonic()
    peak, peak_at, samples = 0.0, 0.0, 0
    peak_breakdown = None
    while (elapsed := time.monotonic() - started) < WAITING_SAMPLE_S:
        if not tracker.running:
            raise BenchError(f"waiting tracker exited ({tracker.returncode})"
                             f":\n{log_tail(tracker.log_path)}")
        try:
            value = rss_mib(tracker.pid)
        except (FileNotFoundError, ProcessLookupError, KeyError):
            value = 0.0   # exec not finished or exiting: no VmRSS yet
        samples += 1
        if value > peak:
            peak, peak_at = value, elapsed
            if value > GOAL_MIB or peak_breakdown is None:
                peak_breakdown = memory_breakdown(tracker.pid)
        time.sleep(SAMPLE_INTERVAL_S)
    waiting = metric(metrics_port, "qfp_tracker_queue_records")
    if waiting != failures:
        raise BenchError(f"the waiting tracker's qfp_tracker_queue_records is "
                         f"{waiting}, expected {failures}:\n"
                         f"{log_tail(tracker.log_path)}")
    hwm = proc_status(tracker.pid)["VmHWM"] / 1024
    end_breakdown = memory_breakdown(tracker.pid)
    run.stop_tracker(tracker)
    shutil.rmtree(wal_dir, ignore_errors=True)
    return {"rss": peak, "peak_at_s": peak_at, "samples": samples,
            "vmhwm": hwm, "fill_s": fill_s, "db_mib": db_mib,
            "breakdown": peak_breakdown if peak > GOAL_MIB else end_breakdown}


def start_producer(run: Run, index: int, address: str, first_index: int,
                   count: int, batch: int, base_ns: int) -> subprocess.Popen:
    log = open(os.path.join(run.root, f"producer-{index}.log"), "ab")
    try:
        popen = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_producer",
             "--address", address, "--poller-id", f"rss-bench-{index}",
             "--instance-id", f"{os.getpid()}-{time.time_ns()}",
             "--first-index", str(first_index), "--count", str(count),
             "--batch", str(batch), "--base-ns", str(base_ns)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, text=True, bufsize=1)
    finally:
        log.close()
    run.producers.append(popen)
    return popen


def read_messages(popen: subprocess.Popen, into: queue.Queue,
                  index: int) -> None:
    """Thread: every JSON line a producer prints, as (index, dict)."""
    for line in popen.stdout:
        try:
            into.put((index, json.loads(line)))
        except ValueError:
            into.put((index, {"error": f"unreadable: {line!r}"}))
    into.put((index, {"eof": True}))


def wait_messages(messages: queue.Queue, key: str, producers: int,
                  timeout: float, run: Run) -> dict:
    """{index: message} once every producer sent a message with `key`."""
    deadline = time.monotonic() + timeout
    got = {}
    while len(got) < producers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"producers: no {key!r} from "
                             f"{sorted(set(range(producers)) - set(got))} "
                             f"within {timeout:.0f} s")
        try:
            index, message = messages.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if key in message:
            got[index] = message
        elif "eof" in message and index in got:
            continue   # exited after its answer
        elif "eof" in message or "error" in message:
            raise BenchError(
                f"producer {index} failed ({message}); log:\n"
                f"{log_tail(os.path.join(run.root, f'producer-{index}.log'))}")
    return got


def measure_after(run: Run, failures: int, producers: int,
                  batch: int) -> dict:
    wal_dir = os.path.join(run.root, "after-wal")
    metrics_port = procs.free_port()
    config = run.tracker_config("after", influx_port=run.influx.http_port,
                                wal_dir=wal_dir, metrics_port=metrics_port,
                                failures=failures)
    tracker = run.spawn_tracker(config, "tracker-after")
    run.wait_listening(tracker)
    with open(config, encoding="utf-8") as f:
        address = json.load(f)["Butler-SOS"]["failedPolls"]["tracker"][
            "listen"]

    base_ns = (int(time.time()) - 1800) * 1_000_000_000
    messages: queue.Queue = queue.Queue()
    share, extra = divmod(failures, producers)
    first = 0
    for index in range(producers):
        count = share + (1 if index < extra else 0)
        popen = start_producer(run, index, address, first, count, batch,
                               base_ns)
        threading.Thread(target=read_messages, args=(popen, messages, index),
                         daemon=True).start()
        first += count
    ready = wait_messages(messages, "ready", producers,
                          PRODUCER_READY_TIMEOUT_S, run)
    go = time.monotonic()
    for popen in run.producers:
        popen.stdin.write("go\n")
        popen.stdin.flush()
    done = wait_messages(messages, "done", producers, SEND_TIMEOUT_S, run)
    send_s = time.monotonic() - go
    accepted = sum(m["done"]["accepted"] for m in done.values())
    if accepted != failures:
        raise BenchError(f"producers got {accepted} acknowledgements for "
                         f"{failures} failures: {done}")

    def drained():
        if not tracker.running:
            raise BenchError(f"tracker exited:\n{log_tail(tracker.log_path)}")
        records = metric(metrics_port, "qfp_tracker_queue_records")
        return records == 0 and stack.stored_point_count(run.influx) \
            == failures
    try:
        procs.wait_until(drained, DRAIN_TIMEOUT_S, interval=0.5)
    except TimeoutError:
        raise BenchError(
            f"not drained within {DRAIN_TIMEOUT_S:.0f} s: queue records "
            f"{metric(metrics_port, 'qfp_tracker_queue_records')}, influxd "
            f"count {stack.stored_point_count(run.influx)} of {failures}"
        ) from None
    drain_s = time.monotonic() - go
    hwm = proc_status(tracker.pid)["VmHWM"] / 1024
    time.sleep(AFTER_IDLE_S)
    if not tracker.running:
        raise BenchError(f"tracker exited:\n{log_tail(tracker.log_path)}")
    result = {"rss": rss_mib(tracker.pid), "vmhwm": hwm,
              "breakdown": memory_breakdown(tracker.pid),
              "send_s": send_s, "drain_s": drain_s,
              "build_s": max(m["build_s"] for m in ready.values()),
              "resent": sum(m["done"]["resent"] for m in done.values()),
              "duplicates": metric(metrics_port,
                                   "qfp_tracker_failures_duplicate_total")}
    run.stop_tracker(tracker)
    os.remove(tracker.log_path)   # one line per failure: hundreds of MB
    shutil.rmtree(wal_dir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------
# The producer (a child process; one gRPC stream)
# --------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def producer_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="tracker_rss_bench.py _producer")
    for name in ("--address", "--poller-id", "--instance-id"):
        parser.add_argument(name, required=True)
    for name in ("--first-index", "--count", "--batch", "--base-ns"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args(argv)

    import grpc
    from support import grpc_client
    pb = grpc_client.pb

    def say(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    # Everything but id and occurred_at, per server, serialized once; the
    # rest is spliced in by hand (protobuf accepts fields in any order).
    rests = []
    for s in range(SERVERS):
        template = grpc_client.failure(1, server=f"sense{s}")
        template.remote_address = f"10.0.0.{s + 5}"
        template.remote_port = 4747
        template.syscall = "connect"
        template.ClearField("id")
        template.ClearField("occurred_at")
        rests.append(template.SerializeToString())
    id_head = (_field(1, args.poller_id.encode())
               + _field(2, args.instance_id.encode()) + b"\x18")

    def failure_bytes(sequence: int) -> bytes:
        # Global index: a unique timestamp (1 us apart) across producers.
        index = args.first_index + sequence - 1
        at_ns = args.base_ns + index * 1000
        stamp = (b"\x08" + _varint(at_ns // 1_000_000_000)
                 + b"\x10" + _varint(at_ns % 1_000_000_000))
        return (_field(1, id_head + _varint(sequence)) + _field(2, stamp)
                + rests[index % SERVERS])

    def requests_for(sequences: list[int]) -> list[bytes]:
        return [b"".join(_field(1, failure_bytes(q))
                         for q in sequences[at:at + args.batch])
                for at in range(0, len(sequences), args.batch)]

    started = time.monotonic()
    requests = requests_for(list(range(1, args.count + 1)))
    check = pb.ReportFailuresRequest.FromString(requests[0])
    if check.failures[0].id.sequence != 1 or \
            check.failures[0].id.poller_id != args.poller_id:
        raise SystemExit(f"hand-encoded request does not parse back: {check}")
    say({"ready": True, "build_s": time.monotonic() - started,
         "requests": len(requests)})
    if sys.stdin.readline().strip() != "go":
        return 1

    channel = grpc.insecure_channel(args.address)
    call = channel.stream_stream(
        "/failedpolls.v1.FailedPollTracker/ReportFailures",
        request_serializer=lambda b: b,
        response_deserializer=pb.ReportFailuresResponse.FromString)
    started = time.monotonic()
    accepted, resent, rounds = 0, 0, 0
    deadline = started + SEND_TIMEOUT_S - 30
    while requests:
        rounds += 1
        refused = []
        for response in call(iter(requests),
                             timeout=max(1.0, deadline - time.monotonic())):
            accepted += len(response.accepted)
            refused.extend(r.id.sequence for r in response.refused)
        if not refused:
            break
        # Refused (queue full, say): the producer keeps them and resends.
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(refused)} still refused after "
                             f"{rounds} rounds")
        resent += len(refused)
        time.sleep(0.5)
        requests = requests_for(sorted(refused))
    channel.close()
    say({"done": {"accepted": accepted, "resent": resent, "rounds": rounds,
                  "send_s": time.monotonic() - started}})
    return 0


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def print_breakdown(title: str, breakdown: dict) -> None:
    print(f"    {title}: smaps_rollup Rss {breakdown['rollup_rss']:.1f} MiB "
          f"(Pss {breakdown['rollup_pss']:.1f}; anonymous {breakdown['rollup_anonymous']:.1f}, file "
          f"{breakdown['rss_file']:.1f}, shmem {breakdown['rss_shmem']:.1f}),"
          f" {breakdown['threads']} threads")
    for kind, mib in breakdown["kinds"].items():
        if mib >= 0.1:
            print(f"      {mib:7.1f} MiB  {kind}")
    print("      largest files: " + ", ".join(
        f"{name} {mib:.1f}" for name, mib in breakdown["top_files"].items()))


def report(results: list[dict], args) -> bool:
    n = f"{args.failures:,}"
    rows = [
        ("baseline", "baseline: fresh tracker, empty queue, idle 3 s"),
        ("waiting", f"waiting: peak over 10 s, {n} queued, InfluxDB down"),
        ("after", f"after: idle 3 s after {n} accepted and written"),
    ]
    runs = len(results)
    print()
    print(f"qs-error-tracker RSS (VmRSS), MiB: min / median / max of {runs} "
          f"run{'s' if runs != 1 else ''}; ratio to the same run's baseline")
    print(f"  {'figure':<62} {'RSS MiB':<24} {'ratio':<24} goal <= "
          f"{GOAL_MIB:.0f} MiB")
    all_met = True
    for key, label in rows:
        values = [r[key]["rss"] for r in results]
        ratios = [r[key]["rss"] / r["baseline"]["rss"] for r in results]
        if key == "baseline":
            verdict, ratio_text = "(reference)", "x1.00"
        else:
            met = max(values) <= GOAL_MIB
            all_met &= met
            verdict = (f"{'met' if met else 'MISSED'} (worst "
                       f"{max(values):.1f})")
            ratio_text = ratio_spread(ratios)
        print(f"  {label:<62} {spread(values):<24} {ratio_text:<24} "
              f"{verdict}")
    print()
    for i, r in enumerate(results, 1):
        w, a = r["waiting"], r["after"]
        print(f"  run {i}: baseline {r['baseline']['rss']:.1f}; waiting peak "
              f"{w['rss']:.1f} at {w['peak_at_s']:.1f} s ({w['samples']} "
              f"samples, VmHWM {w['vmhwm']:.1f}; queue filled in "
              f"{w['fill_s']:.1f} s, {w['db_mib']:.0f} MiB on disk); after "
              f"{a['rss']:.1f} (VmHWM while ingesting {a['vmhwm']:.1f})")
        rate = args.failures / a["send_s"] if a["send_s"] else 0
        print(f"         sent {args.failures:,} over gRPC with "
              f"{args.producers} producers in {a['send_s']:.1f} s "
              f"({rate:,.0f}/s; requests prebuilt in {a['build_s']:.1f} s), "
              f"all in influxd {a['drain_s']:.1f} s after the start; "
              f"refused and resent {a['resent']}, duplicates "
              f"{a['duplicates']:.0f}; run took {r['seconds']:.0f} s")
    worst = {key: max(results, key=lambda r: r[key]["rss"])
             for key, _ in rows}
    print()
    print("  where the memory is (/proc/PID/smaps), worst run of each figure:")
    for key, _ in rows:
        print_breakdown(f"{key} {worst[key][key]['rss']:.1f} MiB",
                        worst[key][key]["breakdown"])
    return all_met


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def one_run(number: int, args, pki, bin_dir: str, tmp: str) -> dict:
    started = time.monotonic()
    root = os.path.join(tmp, f"run{number}")
    os.makedirs(root)
    run = Run(root, pki, bin_dir)
    try:
        run.influx = InfluxD(os.path.join(root, "influxd")).start()
        print(f"run {number}: baseline", flush=True)
        baseline = measure_baseline(run, args.failures)
        print(f"run {number}: waiting ({args.failures:,} queued, "
              f"InfluxDB down)", flush=True)
        waiting = measure_waiting(run, args.failures)
        print(f"run {number}: after ({args.failures:,} over gRPC to "
              f"influxd)", flush=True)
        after = measure_after(run, args.failures, args.producers, args.batch)
    finally:
        run.stop_all()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return {"baseline": baseline, "waiting": waiting, "after": after,
            "seconds": time.monotonic() - started}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_producer"]:
        return producer_main(argv[1:])
    parser = argparse.ArgumentParser(
        description="qs-error-tracker RSS: empty, with a backlog while "
                    "InfluxDB is down, and idle after a large backlog was "
                    "written (goal <= 40 MiB).")
    parser.add_argument("--failures", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--producers", type=int, default=2,
                        help="concurrent gRPC producers (processes)")
    parser.add_argument("--batch", type=int, default=500,
                        help="failures per ReportFailuresRequest")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, configs)")
    args = parser.parse_args(argv)
    if args.failures < 1 or args.runs < 1 or args.producers < 1 \
            or args.batch < 1:
        parser.error("--failures, --runs, --producers and --batch must be "
                     ">= 1")

    # SIGTERM unwinds like Ctrl-C, so every process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    source = procs.bin_path("qs-error-tracker")
    tmp = tempfile.mkdtemp(prefix="qfp-rss-bench-")
    bin_dir = os.path.join(tmp, "bin")
    os.makedirs(bin_dir)
    shutil.copy2(source, os.path.join(bin_dir, "qs-error-tracker"))
    started = time.monotonic()
    print(f"tracker {source} (built "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.path.getmtime(source)))}"
          f"), {args.failures:,} failures, {args.runs} run(s), "
          f"{args.producers} producers, batches of {args.batch}; "
          f"work dir {tmp}", flush=True)
    print(linked_libraries(os.path.join(bin_dir, "qs-error-tracker")))
    try:
        pki = certs.make_pki(os.path.join(tmp, "pki"), key_type="ec")
        results = [one_run(i, args, pki, bin_dir, tmp)
                   for i in range(1, args.runs + 1)]
        met = report(results, args)
    except BenchError as error:
        print(f"tracker_rss_bench: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n  total {time.monotonic() - started:.0f} s")
    return 0 if met else 3


if __name__ == "__main__":
    sys.exit(main())
