#!/usr/bin/env python3
"""Writes the two Grafana dashboards of this directory from one description.

    python3 dashboards/generate.py            # rewrite the JSON files
    python3 dashboards/generate.py --check    # exit 1 if they are stale

- ``qlik-failed-polls-influxql.json``: an InfluxDB 1.x data source (InfluxQL).
- ``qlik-failed-polls-flux.json``: an InfluxDB 2.x data source (Flux).

Both have the same panels, and each InfluxQL query has a Flux twin with the
same refId, the same measurement, filters and grouping
(tests/dashboards/test_dashboards.py checks that, runs every InfluxQL query
against influxd and parses every Flux query with InfluxData's parser).

Points read (docs/compatibility.md §3, and our additions in README.md):
- the errors measurement (Butler SOS's ``errorTracking.influxdb.
  measurementName``, default ``butler_sos_errors``): one point per failed
  poll, ``error_count`` = 1, tags ``error_type``, ``server_name``, ``host``,
  ``virtual_proxy`` (PROXY_API only), field ``error_category``. Ours adds
  ``error_type="POLLER"`` points (``error_category="silent"``, server_name =
  the poller id) and ``error_category="not_polled"`` points, which keep their
  target's own error_type;
- the attempts measurement (opt-in, default ``butler_sos_poll_attempts``):
  integer fields ``attempted`` and ``failed`` per target and heartbeat, tags
  ``error_type``, ``server_name``, ``host``, ``virtual_proxy``, ``poller_id``.

Panels that count failed polls filter ``error_type`` on Butler SOS's three
types (the ``error_type`` variable, whose "All" is exactly those three), so
POLLER points never appear in them. Measurement names (and the Flux bucket)
are textbox variables with those defaults; the data source is an import input
(``__inputs``), so the files import into any Grafana.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x dashboard JSON model

BUTLER_SOS_TYPES = ["HEALTH_API", "PROXY_API", "APP_NAMES_EXTRACT"]
# docs/compatibility.md §4, then our coverage category.
CATEGORIES = ["timeout", "connection_refused", "host_not_found",
              "connection_reset", "auth_error", "not_found", "rate_limited",
              "http_4xx", "http_5xx", "certificate_error", "invalid_response",
              "unknown", "not_polled"]
ERRORS_MEASUREMENT = "butler_sos_errors"
ATTEMPTS_MEASUREMENT = "butler_sos_poll_attempts"
DEFAULT_BUCKET = "mybucket"  # Butler SOS's production template

FLAVOURS = {
    "influxql": {
        "file": "qlik-failed-polls-influxql.json",
        "uid": "qfp-failed-polls-influxql",
        "title": "Qlik Sense failed polls (InfluxDB 1.x, InfluxQL)",
        "input": "DS_INFLUXDB_INFLUXQL",
        "input_label": "InfluxDB 1.x (InfluxQL)",
    },
    "flux": {
        "file": "qlik-failed-polls-flux.json",
        "uid": "qfp-failed-polls-flux",
        "title": "Qlik Sense failed polls (InfluxDB 2.x, Flux)",
        "input": "DS_INFLUXDB_FLUX",
        "input_label": "InfluxDB 2.x (Flux)",
    },
}

# -- InfluxQL ------------------------------------------------------------
# Grafana replaces $timeFilter, $__interval and the variables; a multi-value
# variable inside /^...$/ becomes an alternation of its values.

IQL_SELECTION = ('"error_type" =~ /^$error_type$/ AND '
                 '"server_name" =~ /^$server$/')


def iql(select: str, measurement_var: str, where: str, group_by: str) -> str:
    return (f'SELECT {select} FROM "${measurement_var}" WHERE $timeFilter'
            f"{' AND ' + where if where else ''}"
            f" GROUP BY time($__interval){', ' + group_by if group_by else ''}"
            f" fill(none)")


# -- Flux ----------------------------------------------------------------
# Grafana replaces ${var} and ${var:regex} before sending; v.timeRangeStart,
# v.timeRangeStop and v.windowPeriod are Flux values Grafana passes along.

FLUX_SELECTION = ('r.error_type =~ /^${error_type:regex}$/ and '
                  'r.server_name =~ /^${server:regex}$/')


def flux(measurement_var: str, fields: list[str], where: str,
         steps: list[str]) -> str:
    field_test = " or ".join(f'r._field == "{f}"' for f in fields)
    if len(fields) > 1:
        field_test = f"({field_test})"
    lines = ['from(bucket: "${bucket}")',
             "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
             f'  |> filter(fn: (r) => r._measurement == "${{{measurement_var}}}"'
             f" and {field_test})"]
    if where:
        lines.append(f"  |> filter(fn: (r) => {where})")
    lines += [f"  |> {step}" for step in steps]
    return "\n".join(lines)


def flux_sum_by(columns: list[str]) -> list[str]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return [f"group(columns: [{cols}])",
            "aggregateWindow(every: v.windowPeriod, fn: sum, "
            "createEmpty: false)"]


# -- Panels: (title, description, unit, [(refId, influxql, alias, flux)]) --

def panels_spec() -> list[dict]:
    by_category_iql = [
        (chr(ord("A") + i),
         iql(f'sum("error_count") AS "{category}"', "errors_measurement",
             f"{IQL_SELECTION} AND \"error_category\" = '{category}'", ""),
         category)
        for i, category in enumerate(CATEGORIES)]
    return [
        {"title": "Failed polls by server and type",
         "description": "Failed polls (sum of error_count) per server and "
                        "Butler SOS error_type. Includes targets not polled "
                        "(their own error_type); never POLLER points.",
         "unit": "short",
         "targets": [
             ("A",
              iql('sum("error_count")', "errors_measurement", IQL_SELECTION,
                  '"server_name", "error_type"'),
              "$tag_server_name $tag_error_type",
              flux("errors_measurement", ["error_count"], FLUX_SELECTION,
                   flux_sum_by(["server_name", "error_type"])))]},
        {"title": "Failed session polls by virtual proxy",
         "description": "PROXY_API failures per server and virtual proxy.",
         "unit": "short",
         "targets": [
             ("A",
              iql('sum("error_count")', "errors_measurement",
                  "\"error_type\" = 'PROXY_API' AND "
                  '"server_name" =~ /^$server$/',
                  '"server_name", "virtual_proxy"'),
              "$tag_server_name $tag_virtual_proxy",
              flux("errors_measurement", ["error_count"],
                   'r.error_type == "PROXY_API" and '
                   'r.server_name =~ /^${server:regex}$/',
                   flux_sum_by(["server_name", "virtual_proxy"])))]},
        {"title": "Failed polls by category",
         "description": "Failed polls per error_category (a field, so "
                        "InfluxQL needs one query per category; Flux pivots "
                        "the field into a column and groups by it).",
         "unit": "short",
         "targets": [(ref, q, alias, None) for ref, q, alias in by_category_iql]
                    + [("A", None, None,
                        flux("errors_measurement",
                             ["error_count", "error_category"],
                             FLUX_SELECTION,
                             ['pivot(rowKey: ["_time"], columnKey: ["_field"],'
                              ' valueColumn: "_value")',
                              'group(columns: ["error_category"])',
                              "aggregateWindow(every: v.windowPeriod, fn: sum,"
                              ' column: "error_count", createEmpty: false)']))]},
        {"title": "Failure ratio by server and type",
         "description": "sum(failed) / sum(attempted) per server and "
                        "error_type, from the poll attempts measurement "
                        "(tracker option, off by default).",
         "unit": "percentunit",
         "targets": [
             ("A",
              iql('sum("failed") / sum("attempted")', "attempts_measurement",
                  IQL_SELECTION, '"server_name", "error_type"'),
              "$tag_server_name $tag_error_type",
              flux("attempts_measurement", ["attempted", "failed"],
                   FLUX_SELECTION,
                   ['group(columns: ["server_name", "error_type", "_field"])',
                    "aggregateWindow(every: v.windowPeriod, fn: sum, "
                    "createEmpty: false)",
                    'pivot(rowKey: ["_time"], columnKey: ["_field"], '
                    'valueColumn: "_value")',
                    "map(fn: (r) => ({_time: r._time, server_name: "
                    "r.server_name, error_type: r.error_type, _value: "
                    "float(v: r.failed) / float(v: r.attempted)}))"]))]},
        {"title": "Poller liveness",
         "description": "A: a poller that missed its heartbeats (POLLER "
                        "points, category silent), per poller id. B: polls "
                        "each poller reported attempting (attempts "
                        "measurement), so a poller that stops shows as a gap.",
         "unit": "short",
         "targets": [
             ("A",
              iql('sum("error_count")', "errors_measurement",
                  "\"error_type\" = 'POLLER' AND "
                  "\"error_category\" = 'silent'",
                  '"server_name"'),
              "silent: $tag_server_name",
              flux("errors_measurement", ["error_count", "error_category"],
                   'r.error_type == "POLLER"',
                   ['pivot(rowKey: ["_time"], columnKey: ["_field"],'
                    ' valueColumn: "_value")',
                    'filter(fn: (r) => r.error_category == "silent")',
                    'group(columns: ["server_name"])',
                    "aggregateWindow(every: v.windowPeriod, fn: sum,"
                    ' column: "error_count", createEmpty: false)'])),
             ("B",
              iql('sum("attempted")', "attempts_measurement", "",
                  '"poller_id"'),
              "attempted: $tag_poller_id",
              flux("attempts_measurement", ["attempted"], "",
                   flux_sum_by(["poller_id"])))]},
        {"title": "Targets not polled",
         "description": "Configured targets that no poller attempted within "
                        "2 of their intervals (error_category not_polled), "
                        "per server and error_type.",
         "unit": "short",
         "targets": [
             ("A",
              iql('sum("error_count")', "errors_measurement",
                  f"{IQL_SELECTION} AND \"error_category\" = 'not_polled'",
                  '"server_name", "error_type"'),
              "$tag_server_name $tag_error_type",
              flux("errors_measurement", ["error_count", "error_category"],
                   FLUX_SELECTION,
                   ['pivot(rowKey: ["_time"], columnKey: ["_field"],'
                    ' valueColumn: "_value")',
                    'filter(fn: (r) => r.error_category == "not_polled")',
                    'group(columns: ["server_name", "error_type"])',
                    "aggregateWindow(every: v.windowPeriod, fn: sum,"
                    ' column: "error_count", createEmpty: false)']))]},
    ]


# -- Dashboard JSON ---------------------------------------------------------

def datasource(flavour: str) -> dict:
    return {"type": "influxdb", "uid": "${%s}" % FLAVOURS[flavour]["input"]}


def textbox(name: str, label: str, value: str, description: str) -> dict:
    return {"type": "textbox", "name": name, "label": label,
            "description": description, "query": value, "hide": 0,
            "current": {"selected": False, "text": value, "value": value},
            "options": [{"selected": True, "text": value, "value": value}]}


def variables(flavour: str) -> list[dict]:
    out = []
    if flavour == "flux":
        out.append(textbox("bucket", "Bucket", DEFAULT_BUCKET,
                           "Bucket Butler SOS and the tracker write to "
                           "(influxdbConfig.v2Config.bucket)."))
    out.append(textbox("errors_measurement", "Errors measurement",
                       ERRORS_MEASUREMENT,
                       "Butler-SOS.errorTracking.influxdb.measurementName"))
    out.append(textbox("attempts_measurement", "Attempts measurement",
                       ATTEMPTS_MEASUREMENT,
                       "The tracker's poll attempts measurement"))
    types_regex = "|".join(BUTLER_SOS_TYPES)
    if flavour == "influxql":
        servers = ('SHOW TAG VALUES FROM "$errors_measurement" WITH KEY = '
                   f'"server_name" WHERE "error_type" =~ /^({types_regex})$/')
    else:
        servers = ('import "influxdata/influxdb/schema"\n'
                   'schema.tagValues(bucket: "${bucket}", tag: "server_name",'
                   ' predicate: (r) => r._measurement == '
                   '"${errors_measurement}" and r.error_type =~ '
                   f'/^({types_regex})$/, start: v.timeRangeStart)')
    out.append({
        "type": "query", "name": "server", "label": "Server",
        "description": "server_name tag of Butler SOS's three error types",
        "datasource": datasource(flavour),
        "query": servers, "refresh": 2, "sort": 1, "hide": 0,
        "multi": True, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"],
                    "value": ["$__all"]},
        "options": [], "regex": ""})
    all_types = ",".join(BUTLER_SOS_TYPES)
    out.append({
        "type": "custom", "name": "error_type", "label": "Error type",
        "description": "Butler SOS's three poll types. All is exactly "
                       "these three (no allValue), so POLLER points stay out.",
        "query": all_types, "hide": 0, "multi": True, "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [{"selected": True, "text": "All", "value": "$__all"}]
                   + [{"selected": False, "text": t, "value": t}
                      for t in BUTLER_SOS_TYPES]})
    return out


def panel(flavour: str, number: int, spec: dict) -> dict:
    targets = []
    for ref, influxql, alias, flux_query in spec["targets"]:
        if flavour == "influxql" and influxql is not None:
            targets.append({"refId": ref, "datasource": datasource(flavour),
                             "query": influxql, "rawQuery": True,
                             "resultFormat": "time_series", "alias": alias})
        elif flavour == "flux" and flux_query is not None:
            targets.append({"refId": ref, "datasource": datasource(flavour),
                            "query": flux_query})
    ratio = spec["unit"] == "percentunit"
    defaults = {"unit": spec["unit"], "min": 0,
                "custom": {"drawStyle": "bars" if not ratio else "line",
                           "fillOpacity": 60 if not ratio else 10,
                           "stacking": {"mode": "none" if ratio else "normal",
                                        "group": "A"}}}
    if ratio:
        defaults["max"] = 1
    else:
        defaults["decimals"] = 0
    return {
        "id": number, "type": "timeseries", "title": spec["title"],
        "description": spec["description"], "datasource": datasource(flavour),
        "gridPos": {"h": 9, "w": 12, "x": 12 * ((number - 1) % 2),
                    "y": 9 * ((number - 1) // 2)},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "showLegend": True, "calcs": ["sum"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets}


def dashboard(flavour: str) -> dict:
    meta = FLAVOURS[flavour]
    return {
        "__inputs": [{"name": meta["input"], "label": meta["input_label"],
                      "description": "The InfluxDB data source holding Butler "
                                     "SOS's errors measurement",
                      "type": "datasource", "pluginId": "influxdb",
                      "pluginName": "InfluxDB"}],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana",
             "version": "10.4.0"},
            {"type": "datasource", "id": "influxdb", "name": "InfluxDB",
             "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series",
             "version": ""}],
        "uid": meta["uid"], "title": meta["title"],
        "description": "Failed polls of Qlik Sense (Butler SOS's errors "
                       "measurement) and the qlik-failed-polls additions: "
                       "failure ratio, poller liveness, targets not polled.",
        "tags": ["qlik-sense", "butler-sos", "failed-polls"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "graphTooltip": 1, "refresh": "1m", "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []}, "links": [],
        "templating": {"list": variables(flavour)},
        "panels": [panel(flavour, i + 1, spec)
                   for i, spec in enumerate(panels_spec())],
    }


def render(flavour: str) -> str:
    return json.dumps(dashboard(flavour), indent=2) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a file differs from what it would be")
    args = parser.parse_args(argv)
    stale = []
    for flavour, meta in FLAVOURS.items():
        path = HERE / meta["file"]
        text = render(flavour)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale (run python3 dashboards/generate.py): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
