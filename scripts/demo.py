#!/usr/bin/env python3
"""Runs qlik-failed-polls on local defaults and shows what it recorded.

Starts a private influxd, a fake Qlik Sense site (one healthy server and
several failing in different ways, for all three polled APIs), the tracker
and the poller; lets them run; prints the failed polls from influxd with
InfluxQL; stops everything it started. Run through scripts/demo.sh, which
builds first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from support import certs, procs, stack  # noqa: E402
from support.fake_qlik import FakeQlikSite  # noqa: E402
from support.influxd import InfluxD  # noqa: E402

QUERY = ('SELECT "error_count", "error_category", "error_code", '
         '"http_status" FROM "butler_sos_errors" WHERE time > now() - 1h '
         'GROUP BY "server_name", "error_type", "virtual_proxy"')


def build_config(pki, site, influx, tracker_port):
    ports = site.ports
    servers = [stack.server_entry(name, ports[name])
               for name in ("sense-ok", "sense-http500", "sense-forbidden",
                            "sense-down", "sense-hung", "sense-foreign-ca",
                            "sense-expired", "sense-login-page")]
    servers.append(stack.server_entry(
        "proxy-mixed", ports["proxy-mixed"],
        sessions_port=ports["proxy-mixed"],
        virtual_proxies=["/", "/sales", "/hr"]))
    return stack.butler_config(
        pki, servers, influx_port=influx.http_port, tracker_port=tracker_port,
        health_interval_ms=5000, request_timeout_ms=3000,
        sessions_interval_ms=5000,
        app_names_host=f"127.0.0.1:{ports['qrs-unauthorized']}",
        app_names_interval_ms=5000)


def print_table(influx):
    answer = influx.query(QUERY, db=stack.DB)
    rows = collections.Counter()
    for series in answer["results"][0].get("series", []):
        tags = series.get("tags", {})
        columns = series["columns"]
        for values in series["values"]:
            point = dict(zip(columns, values))
            status = point["http_status"]
            rows[(tags.get("server_name", ""), tags.get("error_type", ""),
                  tags.get("virtual_proxy", ""), point["error_category"],
                  point["error_code"] or "",
                  "" if status is None else str(int(status)))] += int(
                      point["error_count"])
    print(f"\nInfluxQL: {QUERY}\n")
    header = ("server_name", "error_type", "virtual_proxy", "error_category",
              "error_code", "http", "failed polls")
    table = [header] + [(*key, str(count)) for key, count in sorted(rows.items())]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\n{sum(rows.values())} failed polls recorded; none for sense-ok.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20,
                        help="how long to let the services run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (logs, config)")
    args = parser.parse_args()
    os.environ.setdefault("QFP_BIN_DIR", os.path.join(REPO, "build"))

    work = tempfile.mkdtemp(prefix="qfp-demo-")
    print(f"working directory: {work}")
    with open(os.path.join(REPO, "config", "demo-scenario.json")) as f:
        scenario = json.load(f)
    pki = certs.make_pki(os.path.join(work, "pki"), key_type="ec")
    with InfluxD(os.path.join(work, "influxd")) as influx, \
            FakeQlikSite(scenario, pki) as site:
        print(f"influxd on 127.0.0.1:{influx.http_port}; fake Qlik Sense "
              f"site on ports {sorted(site.ports.values())}")
        config = build_config(pki, site, influx, procs.free_port())
        config_path = stack.write_config(
            os.path.join(work, "butler-sos.yaml"), config)
        tracker = stack.start_tracker(config_path, work)
        poller = stack.start_poller(config_path, work)
        try:
            print(f"tracker and poller running; polling for "
                  f"{args.seconds:.0f} s ...")
            time.sleep(args.seconds)
        finally:
            poller.stop(timeout=20)
            tracker.stop(timeout=20)
        print_table(influx)
    if args.keep:
        print(f"\nlogs and config kept: {poller.log_path}, "
              f"{tracker.log_path}, {config_path}")
    else:
        shutil.rmtree(work, ignore_errors=True)
        print("(working directory removed; use --keep to keep it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
