#!/usr/bin/python3
"""One qs-poller against a site of N servers, 10% of them black-holed.

The issue-10 goals (README's poller section): with a 30 s interval,

  1000 servers: every poll starts within 100 ms of its due time, no skips,
                one timeout point per dead server per interval, poller RSS
                <= 30 MiB, CPU per round reported;
  5000 servers: no skips, every poll starts within 1 s of its due time, RSS
                reported;

against the same poller configured sequentially (maxConcurrentPolls: 1, which
bounds connects and TLS handshakes in flight) in the same run, or with
``--baseline rounds`` against the poller polling in rounds as before issue 10
(``--spread_polls=false``: every target at once, each interval). For each size, one site (bench/poller_scale_site.py: healthy
HTTPS servers answering /engine/healthcheck, black holes that never accept)
and one real qs-error-tracker (failures counted, no InfluxDB) serve
``--runs`` runs of both pollers, one after the other, alternating which goes
first. Each poller runs ``--rounds`` intervals from its start (in which every
target is due once per interval), then one timeout more, then is stopped.

Figures per poller run:

* start lateness: ``qfp_poller_poll_start_lateness_seconds`` (due time to
  when the transport began the request), polls over 100 ms and over 1 s
  counted from its buckets, for polls that completed; and the largest
  "arrival lateness" at the site: when a healthy server received the request
  (after TCP and TLS) against the due time computed as the poller does
  (SHA-256 of the target key, phase on the wall clock);
* skips: ``qfp_poller_polls_skipped_total``;
* timeout points per dead server per interval: for each dead server and
  each of its due times in the measured rounds, the "failed poll ...
  category=timeout" lines logged about one timeout later (min and max over
  all of them: the goal is exactly 1 everywhere);
* false failures: failed polls logged for healthy servers (must be 0);
* RSS: the largest VmRSS sampled every 0.5 s during the rounds, and VmHWM
  (which includes the config parse's transient peak); at each new largest
  sample, where the memory is (/proc/PID/smaps by kind: proc_memory.py),
  printed for the worst run after the table;
* CPU per round: utime+stime from /proc/PID/stat over the rounds, divided
  by the rounds.

Printed as min / median / max over the runs with the ratio of the medians
to the baseline's, and a verdict against each goal (exit status 3 when one
is missed). ``--quick``: 1000 servers, one round, one run; ``--baseline
none``: the measured poller only (e.g. a quick RSS check).

Run from the repository root (``ulimit -n`` must allow the ports: the site
raises its own soft limit up to the hard one):

    /usr/bin/python3 tests/bench/poller_scale_bench.py            # ~15 min
    /usr/bin/python3 tests/bench/poller_scale_bench.py --quick    # ~2 min
"""

from __future__ import annotations

import argparse
import calendar
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

from bench import proc_memory  # noqa: E402
from support import certs, procs, stack  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FAILED = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*failed poll: HEALTH_API "
    r"server=(\S+) host=\S+ category=(\S+)")
LATENESS = "qfp_poller_poll_start_lateness_seconds"


# ---------------------------------------------------------------------------
# What the poller computes, recomputed here (poll_scheduler.h: SpreadOffset)
# ---------------------------------------------------------------------------

def spread_offset_s(key: str, interval_s: float) -> float:
    """SpreadOffset(key, interval) in seconds."""
    interval_ns = round(interval_s * 1e9)
    digest = hashlib.sha256(key.encode()).digest()
    return (int.from_bytes(digest[:8], "big") % interval_ns) / 1e9


def due_times(offset_s: float, interval_s: float, begin: float,
              end: float) -> list[float]:
    """Wall-clock due times in [begin, end) of a target at `offset_s`."""
    first = begin + round((offset_s - begin % interval_s) % interval_s, 6)
    if first >= begin + interval_s:
        first -= interval_s
    times = []
    t = first
    while t < end:
        times.append(t)
        t += interval_s
    return times


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Site:
    def __init__(self, work: str, pki_dir: str, healthy: int, dead: int):
        size = healthy + dead
        self.ready = os.path.join(work, f"site-{size}.ready")
        self.record = os.path.join(work, f"site-{size}.jsonl")
        self.log = open(os.path.join(work, f"site-{size}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.poller_scale_site", "--pki",
             pki_dir, "--healthy", str(healthy), "--dead", str(dead),
             "--ready-file", self.ready, "--record", self.record,
             "--max-seconds", "7200"],
            cwd=TESTS, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the site did not start (see {work})")
            time.sleep(0.1)
        with open(self.ready, encoding="utf-8") as f:
            ready = json.load(f)
        self.healthy, self.dead = ready["healthy"], ready["dead"]
        self.pids = [ready["pid"], *ready.get("workers", [])]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def arrivals(self, begin: float, end: float) -> dict[int, list[float]]:
        """Healthy requests recorded in [begin, end), by port."""
        by_port: dict[int, list[float]] = {}
        with open(self.record, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if begin <= entry["time"] < end:
                    by_port.setdefault(entry["port"], []).append(entry["time"])
        return by_port

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def log_time(stamp: str) -> float:
    parsed = datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return calendar.timegm(parsed.timetuple()) + parsed.microsecond / 1e6


def histogram(samples: dict, name: str) -> tuple[dict, float, float]:
    """{le: cumulative count}, _count and _sum summed over sources."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for (metric, labels), value in samples.items():
        if metric == name + "_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0) + value
        elif metric == name + "_count":
            count += value
        elif metric == name + "_sum":
            total += value
    return buckets, count, total


def counter(samples: dict, name: str) -> float:
    return sum(v for (metric, _), v in samples.items() if metric == name)


# ---------------------------------------------------------------------------
# One poller run
# ---------------------------------------------------------------------------

def run_poller(args, work: str, pki, site: Site, tracker_port: int,
               variant: str, run: int) -> dict:
    names = {}
    servers = []
    for i, port in enumerate(site.healthy):
        names[f"ok{i}"] = port
    for i, port in enumerate(site.dead):
        names[f"dead{i}"] = port
    for name, port in names.items():
        servers.append(stack.server_entry(name, port))
    metrics_port = procs.free_port()
    poller = {"metricsListen": f"127.0.0.1:{metrics_port}",
              "pollerId": f"bench-{variant}"}
    extra_args = []
    if variant == "baseline" and args.baseline == "sequential":
        poller["maxConcurrentPolls"] = 1
    elif variant == "baseline":  # rounds: as before spreading
        extra_args = ["--spread_polls=false"]
    if variant == "spread" or args.baseline == "rounds":
        if args.max_concurrent:
            poller["maxConcurrentPolls"] = args.max_concurrent
    config = stack.butler_config(
        pki, servers, influx_port=1, tracker_port=tracker_port,
        health_interval_ms=int(args.interval * 1000),
        request_timeout_ms=args.timeout_ms, influx_points=False,
        poller_extra=poller)
    config["Butler-SOS"]["errorTracking"]["logSummary"]["enable"] = False
    config["Butler-SOS"]["logLevel"] = "warn"
    tag = f"{variant}-{len(servers)}-{run}"
    path = stack.write_config(os.path.join(work, f"{tag}.json"), config)
    log_path = os.path.join(work, f"{tag}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [args.bin_poller, "--config", path, "--log_level", "info",
             *extra_args],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "qs-poller started" not in open(log_path).read():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: the poller did not start "
                                   f"(see {log_path})")
            time.sleep(0.05)
        t0 = time.time()
        cpu0 = cpu_seconds(proc.pid)
        site_cpu0 = site.cpu_seconds()
        before = stack.scrape_metrics(metrics_port)
        rounds_end = t0 + args.rounds * args.interval
        rss_max = 0
        breakdown = None
        while time.time() < rounds_end:
            rss = status_kib(proc.pid, "VmRSS")
            if rss > rss_max:
                # Where the memory is, at the largest RSS seen.
                rss_max = rss
                breakdown = proc_memory.memory_breakdown(proc.pid)
            time.sleep(min(0.5, max(0.0, rounds_end - time.time())))
        cpu1 = cpu_seconds(proc.pid)
        site_cpu1 = site.cpu_seconds()
        after = stack.scrape_metrics(metrics_port)
        hwm = status_kib(proc.pid, "VmHWM")
        # The last round's dead polls end one timeout later.
        time.sleep(args.timeout_ms / 1000 + 1.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    timeout_s = args.timeout_ms / 1000
    in_rounds = variant == "baseline" and args.baseline == "rounds"

    def offset_for(name: str) -> float:
        # In rounds every target is due at start (t0, read just after the
        # poller logged it started) and every interval after.
        if in_rounds:
            return t0 % args.interval
        return spread_offset_s(f"HEALTH_API {name}", args.interval)
    # Failures from the log.
    failures: dict[str, list[tuple[float, str]]] = {}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = FAILED.match(line)
            if match:
                failures.setdefault(match.group(2), []).append(
                    (log_time(match.group(1)), match.group(3)))
    false_failures = sum(len(v) for k, v in failures.items()
                         if k.startswith("ok"))
    # Timeout points per dead server and due time in the rounds.
    per_due = []
    for i in range(len(site.dead)):
        name = f"dead{i}"
        offset = offset_for(name)
        seen = [t for t, category in failures.get(name, [])
                if category == "timeout"]
        for due in due_times(offset, args.interval, t0, rounds_end):
            per_due.append(sum(1 for t in seen
                               if due + timeout_s - 0.05 <= t
                               <= due + timeout_s + args.interval / 2))
    # Arrival lateness of healthy polls at the site.
    arrivals = site.arrivals(t0 - 1, rounds_end + timeout_s)
    late = []
    for i, port in enumerate(site.healthy):
        offset = offset_for(f"ok{i}")
        for due in due_times(offset, args.interval, t0, rounds_end):
            got = [a - due for a in arrivals.get(port, []) if a >= due - 0.5]
            late.append(min(got) if got else float("inf"))
    b0, c0, s0 = histogram(before, LATENESS)
    b1, c1, s1 = histogram(after, LATENESS)
    _, qc0, qs0 = histogram(before, "qfp_poller_poll_queued_seconds")
    _, qc1, qs1 = histogram(after, "qfp_poller_poll_queued_seconds")
    polls = c1 - c0
    within = {le: b1.get(le, 0) - b0.get(le, 0) for le in (0.1, 1.0)}
    return {
        "polls": polls,
        "over_100ms": polls - within[0.1],
        "over_1s": polls - within[1.0],
        "lateness_mean_ms": 1000 * (s1 - s0) / polls if polls else 0,
        "queued_mean_ms": (1000 * (qs1 - qs0) / (qc1 - qc0) if qc1 > qc0
                           else 0),
        "arrival_late_max_ms": 1000 * max(late) if late else 0,
        "arrival_late_median_ms": 1000 * statistics.median(late) if late
        else 0,
        "skips": counter(after, "qfp_poller_polls_skipped_total")
        - counter(before, "qfp_poller_polls_skipped_total"),
        "timeouts_min": min(per_due) if per_due else 0,
        "timeouts_max": max(per_due) if per_due else 0,
        "timeouts_per_dead_round": (sum(per_due) / len(per_due)
                                    if per_due else 0),
        "false_failures": false_failures,
        "rss_mib": rss_max / 1024,
        "hwm_mib": hwm / 1024,
        "cpu_ms_per_round": 1000 * (cpu1 - cpu0) / args.rounds,
        "cpu_ms_per_poll": 1000 * (cpu1 - cpu0) / polls if polls else 0,
        "site_cpu_ms_per_round": 1000 * (site_cpu1 - site_cpu0) / args.rounds,
        "breakdown": breakdown,
    }


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------

ROWS = [
    # key, label, format
    ("polls", "polls completed in the rounds", "{:.0f}"),
    ("over_100ms", "polls starting > 100 ms late", "{:.0f}"),
    ("over_1s", "polls starting > 1 s late", "{:.0f}"),
    ("lateness_mean_ms", "start lateness, mean (ms)", "{:.1f}"),
    ("queued_mean_ms", "of which in the transport's queue, mean (ms)",
     "{:.1f}"),
    ("arrival_late_median_ms", "arrival at site - due, median (ms)",
     "{:.1f}"),
    ("arrival_late_max_ms", "arrival at site - due, max (ms)", "{:.0f}"),
    ("skips", "polls skipped", "{:.0f}"),
    ("timeouts_min", "timeout points per dead server+interval, min", "{:.0f}"),
    ("timeouts_max", "timeout points per dead server+interval, max", "{:.0f}"),
    ("false_failures", "false failures of healthy servers", "{:.0f}"),
    ("rss_mib", "poller VmRSS during rounds, max (MiB)", "{:.1f}"),
    ("hwm_mib", "poller VmHWM (MiB)", "{:.1f}"),
    ("cpu_ms_per_round", "poller CPU per round (ms)", "{:.0f}"),
    ("cpu_ms_per_poll", "poller CPU per completed poll (ms)", "{:.2f}"),
    ("site_cpu_ms_per_round", "site CPU per round, all workers (ms)",
     "{:.0f}"),
]


def goals(size: int, key: str, interval: float):
    """(goal text, check) for a figure, or None."""
    if key == "false_failures":
        return "0", lambda v: v == 0
    if key == "skips":
        return "0", lambda v: v == 0
    if size >= 5000:
        if key == "over_1s":
            return "0", lambda v: v == 0
        return None
    if key == "over_100ms":
        return "0", lambda v: v == 0
    if key in ("timeouts_min", "timeouts_max"):
        return "1", lambda v: v == 1
    if key == "rss_mib" and not procs.SANITIZED:
        return "<= 30", lambda v: v <= 30
    return None


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def print_table(size: int, dead: int, args, results: dict) -> bool:
    met = True
    print(f"\n### {size} servers ({dead} black-holed), interval "
          f"{args.interval:g} s, timeout {args.timeout_ms} ms, "
          f"{args.rounds} rounds, {args.runs} run(s)\n")
    baseline = {"sequential": "maxConcurrentPolls 1",
                "rounds": "in rounds, --spread_polls=false",
                "none": "not run"}[args.baseline]
    print("| figure | goal | poller min / median / max | baseline "
          f"({baseline}) min / median / max | ratio | verdict |")
    print("|---|---|---|---|---|---|")
    for key, label, fmt in ROWS:
        ours = summary([r[key] for r in results["spread"]])
        if results["baseline"]:
            base = summary([r[key] for r in results["baseline"]])
            ratio = ("-" if base[1] == 0 or base[1] == float("inf")
                     else f"{ours[1] / base[1]:.2f}")
        else:
            base = None
            ratio = "-"
        goal = goals(size, key, args.interval)
        verdict = ""
        if goal is not None:
            ok = all(goal[1](r[key]) for r in results["spread"])
            verdict = "met" if ok else "MISSED"
            met = met and ok
        print(f"| {label} | {goal[0] if goal else 'reported'} | "
              + " / ".join(fmt.format(v) for v in ours) + " | "
              + (" / ".join(fmt.format(v) for v in base) if base else "-")
              + f" | {ratio} | {verdict} |")
    for variant in ("spread", "baseline"):
        runs = [r for r in results[variant] if r.get("breakdown")]
        if runs:
            worst = max(runs, key=lambda r: r["rss_mib"])
            print("\n" + proc_memory.format_breakdown(
                f"{variant}: where the memory is at its largest VmRSS "
                f"({worst['rss_mib']:.1f} MiB, worst run; /proc/PID/smaps)",
                worst["breakdown"]))
    return met


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="1000,5000",
                        help="comma-separated site sizes")
    parser.add_argument("--dead-fraction", type=float, default=0.1)
    parser.add_argument("--interval", type=float, default=30.0,
                        help="serversToMonitor.pollingInterval, seconds")
    parser.add_argument("--timeout-ms", type=int, default=5000,
                        help="failedPolls.poller.requestTimeout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-concurrent", type=int, default=0,
                        help="maxConcurrentPolls of the measured poller "
                        "(default: the poller's own default)")
    parser.add_argument("--baseline", choices=("sequential", "rounds",
                                               "none"),
                        default="sequential",
                        help="sequential: maxConcurrentPolls 1 (the issue's "
                        "baseline); rounds: every target at once each "
                        "interval (--spread_polls=false), as before issue 10; "
                        "none: only the measured poller (a quick check, no "
                        "ratios)")
    parser.add_argument("--quick", action="store_true",
                        help="1000 servers, 1 round, 1 run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (configs, logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.servers, args.rounds, args.runs = "1000", 1, 1
    bin_dir = os.environ.get("QFP_BIN_DIR", "build")
    work = tempfile.mkdtemp(prefix="qfp-poller-scale-")
    # Copies: a rebuild during the run changes nothing.
    args.bin_poller = shutil.copy(
        os.path.join(bin_dir, procs.KNOWN_BINARIES["qs-poller"]), work)
    bin_tracker = shutil.copy(
        os.path.join(bin_dir, procs.KNOWN_BINARIES["qs-error-tracker"]), work)
    pki_dir = os.path.join(work, "pki")
    pki = certs.ensure_pki(pki_dir)
    all_met = True
    print(f"poller_scale_bench: work directory {work}")
    print(f"poller_scale_bench: {proc_memory.linked_libraries(args.bin_poller)}")
    try:
        for size in [int(s) for s in args.servers.split(",")]:
            dead = round(size * args.dead_fraction)
            site = Site(work, pki_dir, size - dead, dead)
            tracker_port = procs.free_port()
            tracker_config = stack.butler_config(
                pki, [], influx_port=1, tracker_port=tracker_port,
                influx_points=False)
            tracker_config["Butler-SOS"]["errorTracking"]["logSummary"][
                "enable"] = False
            tracker_path = stack.write_config(
                os.path.join(work, f"tracker-{size}.json"), tracker_config)
            tracker_log = open(os.path.join(work, f"tracker-{size}.log"), "w")
            tracker = subprocess.Popen(
                [bin_tracker, "--config", tracker_path],
                stdout=tracker_log, stderr=subprocess.STDOUT)
            procs.wait_until(
                lambda: "listening on" in open(tracker_log.name).read(), 30,
                message="the tracker did not start")
            results = {"spread": [], "baseline": []}
            try:
                for run in range(args.runs):
                    order = (("spread", "baseline") if run % 2 == 0
                             else ("baseline", "spread"))
                    if args.baseline == "none":
                        order = ("spread",)
                    for variant in order:
                        print(f"  {size} servers, run {run + 1}, {variant} ...",
                              flush=True)
                        results[variant].append(run_poller(
                            args, work, pki, site, tracker_port, variant,
                            run))
            finally:
                tracker.send_signal(signal.SIGTERM)
                try:
                    tracker.wait(30)
                except subprocess.TimeoutExpired:
                    tracker.kill()
                    tracker.wait()
                tracker_log.close()
                site.stop()
            all_met = print_table(size, dead, args, results) and all_met
            with open(os.path.join(work, f"results-{size}.json"), "w") as f:
                json.dump(results, f, indent=1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\nall goals met" if all_met else "\nsome goals MISSED")
    return 0 if all_met else 3


if __name__ == "__main__":
    sys.exit(main())
