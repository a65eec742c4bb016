"""The Grafana dashboards in dashboards/: they import, and count right.

- The JSON files are what dashboards/generate.py writes.
- Import: each file passes a JSON Schema generated from Grafana's own
  published dashboard type (npm @grafana/schema, through check.mjs), and the
  import-only parts Grafana's schema does not cover (``__inputs``, data
  source references, variables used but not defined, panel ids and layout)
  are checked here.
- InfluxQL: a scenario of failed polls, POLLER and not_polled points and poll
  attempts with known counts is written to a real influxd 1.6 on loopback;
  every InfluxQL query of the 1.x dashboard, with Grafana's ``$timeFilter``,
  ``$__interval`` and variables substituted as Grafana does, runs through
  influxd's /query, and its series must equal the counts computed from the
  scenario (per series and per time bucket).
- Flux: no Flux engine runs here, so every Flux query of the 2.x dashboard is
  parsed by InfluxData's parser (npm @influxdata/flux, WebAssembly, through
  check.mjs) and must have no syntax errors, must pass the Flux language
  server's semantic check (npm @influxdata/flux-lsp-browser: names, types,
  the standard library's signatures); and each is compared with its
  InfluxQL twin by structure: measurement, filters on tags and on
  error_type/error_category, fields, aggregate, grouping, time range.

The npm packages are pinned by package-lock.json here and installed into
tests/dashboards/node_modules by scripts/install-deps.sh (npm ci). Without
them the node checks fail under CI (CI set) and are skipped elsewhere.

Run from tests/:  /usr/bin/python3 -m unittest -v dashboards.test_dashboards
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import dataclass
from pathlib import Path

from support.influxd import InfluxD

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DASHBOARDS = REPO / "dashboards"
INFLUXQL_FILE = DASHBOARDS / "qlik-failed-polls-influxql.json"
FLUX_FILE = DASHBOARDS / "qlik-failed-polls-flux.json"
CHECKER = HERE / "check.mjs"
LOCK = HERE / "package-lock.json"
NODE_TIMEOUT = 120
GENERATE_TIMEOUT = 60

DB = "qlik"
INTERVAL_S = 10          # what $__interval is replaced with
BUTLER_SOS_TYPES = ("HEALTH_API", "PROXY_API", "APP_NAMES_EXTRACT")


# -- Grafana's substitutions -------------------------------------------------

def variable_values(dashboard: dict, overrides: dict | None = None) -> dict:
    """name -> the text Grafana puts in a query for the variable's current
    (default) value, in a regex context where it matters: a textbox gives
    its text; a multi/All variable at "All" gives its allValue when it has
    one, otherwise (v1|v2|...) of its options, as Grafana's InfluxDB data
    source renders a multi-value in /^$var$/ (and ${var:regex} in Flux)."""
    values = {}
    for var in dashboard["templating"]["list"]:
        name = var["name"]
        if var["type"] in ("textbox", "constant"):
            values[name] = var["query"]
        elif var.get("includeAll") and var["current"]["value"] == ["$__all"]:
            if var.get("allValue"):
                values[name] = var["allValue"]
            else:
                options = [o["value"] for o in var["options"]
                           if o["value"] != "$__all"]
                values[name] = "(" + "|".join(re.escape(o)
                                              for o in options) + ")"
        else:
            raise AssertionError(f"variable {name}: no default to use")
    values.update(overrides or {})
    return values


VARIABLE_REF = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")
MACROS = {"timeFilter", "__interval", "__timeFilter"}


def interpolate(query: str, values: dict, macros: dict | None = None) -> str:
    """Replaces variables (and, when given, Grafana's macros) as Grafana
    does; an unknown $name is an error, so a misspelt variable fails."""
    def replace(match):
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2)
        if fmt not in (None, "regex", "raw"):
            raise AssertionError(f"format :{fmt} not emulated in {query!r}")
        if name in values:
            return values[name]
        if name in MACROS:
            return macros[name] if macros else match.group(0)
        raise AssertionError(f"unknown variable ${name} in {query!r}")
    return VARIABLE_REF.sub(replace, query)


# -- The scenario -----------------------------------------------------------

@dataclass(frozen=True)
class ErrorPoint:
    error_type: str
    server_name: str
    category: str
    t: int                      # seconds after the scenario's base time
    virtual_proxy: str | None = None

    def tags(self) -> dict:
        tags = {"error_type": self.error_type, "server_name": self.server_name,
                "host": self.server_name}
        if self.virtual_proxy:
            tags["virtual_proxy"] = self.virtual_proxy
        return tags


@dataclass(frozen=True)
class AttemptPoint:
    error_type: str
    server_name: str
    poller_id: str
    attempted: int
    failed: int
    t: int
    virtual_proxy: str | None = None

    def tags(self) -> dict:
        tags = {"error_type": self.error_type, "server_name": self.server_name,
                "host": self.server_name, "poller_id": self.poller_id}
        if self.virtual_proxy:
            tags["virtual_proxy"] = self.virtual_proxy
        return tags


def escape_tag(value: str) -> str:
    return re.sub(r"([,= ])", r"\\\1", value)


def scenario() -> tuple[list[ErrorPoint], list[AttemptPoint]]:
    errors: list[ErrorPoint] = []

    def fail(n, error_type, server, category, start, step=7, vp=None):
        errors.extend(ErrorPoint(error_type, server, category, start + i * step,
                                 vp) for i in range(n))

    fail(3, "HEALTH_API", "sense1", "timeout", 0)
    fail(2, "PROXY_API", "sense1", "connection_refused", 3, 11, "/")
    fail(1, "PROXY_API", "sense1", "connection_refused", 5, vp="/hr")
    fail(4, "HEALTH_API", "sense2", "auth_error", 1, 5)
    fail(2, "PROXY_API", "sense2", "http_5xx", 2, 13, "/")
    fail(5, "APP_NAMES_EXTRACT", "qrs.example.com", "certificate_error", 4, 6)
    fail(2, "HEALTH_API", "east sense 01", "host_not_found", 8, 9)
    # Coverage: configured targets no poller attempted (their own type).
    fail(2, "HEALTH_API", "sense3", "not_polled", 20, 30)
    fail(1, "PROXY_API", "sense3", "not_polled", 21, vp="/")
    # Silent pollers: error_type POLLER, server_name = the poller id.
    fail(2, "POLLER", "poller-c", "silent", 25, 30)
    fail(1, "POLLER", "poller-d", "silent", 40)
    # Outside the dashboard's time range: must not be counted.
    fail(1, "HEALTH_API", "sense1", "timeout", -7200)
    fail(1, "POLLER", "poller-c", "silent", -7100)

    attempts: list[AttemptPoint] = []
    owned = {"poller-a": [("HEALTH_API", "sense1", None),
                          ("PROXY_API", "sense1", "/"),
                          ("PROXY_API", "sense1", "/hr"),
                          ("APP_NAMES_EXTRACT", "qrs.example.com", None)],
             "poller-b": [("HEALTH_API", "sense2", None),
                          ("PROXY_API", "sense2", "/"),
                          ("HEALTH_API", "east sense 01", None)]}
    for p, (poller, targets) in enumerate(owned.items()):
        for beat in range(5):
            for k, (error_type, server, vp) in enumerate(targets):
                attempted = 2 + (beat + k) % 2
                failed = (beat + k + p) % (attempted + 1)
                attempts.append(AttemptPoint(error_type, server, poller,
                                             attempted, failed,
                                             p * 5 + beat * 12 + k, vp))
    attempts.append(AttemptPoint("HEALTH_API", "sense1", "poller-a", 9, 9,
                                 -7200))
    return errors, attempts


def line_protocol(errors, attempts, base_s: int, errors_measurement: str,
                  attempts_measurement: str) -> list[str]:
    """InfluxDB 1.x types, as the tracker writes them: error_count float,
    attempted and failed integers."""
    lines = []
    for point in errors:
        tags = ",".join(f"{k}={escape_tag(v)}"
                        for k, v in sorted(point.tags().items()))
        lines.append(f"{errors_measurement},{tags} error_category="
                     f"\"{point.category}\",error_count=1 "
                     f"{(base_s + point.t) * 10**9}")
    for point in attempts:
        tags = ",".join(f"{k}={escape_tag(v)}"
                        for k, v in sorted(point.tags().items()))
        lines.append(f"{attempts_measurement},{tags} attempted="
                     f"{point.attempted}i,failed={point.failed}i "
                     f"{(base_s + point.t) * 10**9}")
    return lines


def _series_key(measurement: str, point) -> tuple:
    return (measurement, tuple(sorted(point.tags().items())), point.t)


def expected_sums(points, where, by, value, base_s, start_s, end_s):
    """{(tag values in `by` order): {bucket start ms: sum}} over points in
    [start_s, end_s], bucketed by $__interval as GROUP BY time() does."""
    out = collections.defaultdict(lambda: collections.defaultdict(int))
    for point in points:
        t = base_s + point.t
        if not (start_s <= t <= end_s) or not where(point):
            continue
        key = tuple(getattr(point, tag) for tag in by)
        bucket = (t // INTERVAL_S) * INTERVAL_S * 1000
        out[key][bucket] += value(point)
    return {k: dict(v) for k, v in out.items()}


# -- The node helper ----------------------------------------------------------

def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def checker_problem() -> str | None:
    """Why check.mjs cannot run here (None: it can)."""
    if shutil.which("node") is None:
        return ("node is not installed (Debian nodejs; scripts/install-deps.sh "
                "installs it)")
    packages = json.loads(LOCK.read_text())["packages"]
    for name in ("@influxdata/flux", "@influxdata/flux-lsp-browser",
                 "@grafana/schema", "ajv", "ts-json-schema-generator"):
        pinned = packages[f"node_modules/{name}"]["version"]
        installed = HERE / "node_modules" / name / "package.json"
        have = (json.loads(installed.read_text())["version"]
                if installed.is_file() else None)
        if have != pinned:
            return (f"{name} (npm) {have or 'missing'} in tests/dashboards/"
                    f"node_modules, package-lock.json pins {pinned}: run "
                    "scripts/install-deps.sh (npm ci in tests/dashboards)")
    return None


def require_checker(test: unittest.TestCase) -> None:
    problem = checker_problem()
    if problem is None:
        return
    if _in_ci():
        test.fail(problem)
    test.skipTest(problem)


def run_checker(args: list[str], stdin: str | None = None):
    result = subprocess.run(["node", str(CHECKER), *args], input=stdin,
                            capture_output=True, text=True,
                            timeout=NODE_TIMEOUT, cwd=HERE)
    if result.returncode != 0:
        raise AssertionError(f"check.mjs {args[0]} exited {result.returncode}:"
                             f"\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def parse_flux(queries: list[str]) -> list[dict]:
    return run_checker(["flux"], json.dumps(queries))


# -- Query structure ----------------------------------------------------------

@dataclass
class Structure:
    measurement: str
    filters: dict            # key -> (op, value), op "==" or "=~"
    fields: frozenset        # fields aggregated
    aggregate: str
    group_by: frozenset      # tags, besides time
    time_range: bool         # Grafana's time range applied
    windowed: bool           # bucketed by Grafana's interval

    def comparable(self):
        return (self.measurement, self.filters, self.fields, self.aggregate,
                self.group_by, self.time_range, self.windowed)


IQL_FILTER = re.compile(r"\"(\w+)\"\s*(=~|=|!=)\s*(?:'([^']*)'|/([^/]*)/)")


def influxql_structure(query: str) -> Structure:
    """Of an InfluxQL query whose variables are substituted (macros kept)."""
    measurement = re.search(r'FROM "([^"]+)"', query).group(1)
    head, _, group = query.partition(" GROUP BY ")
    where = head.partition(" WHERE ")[2]
    filters = {}
    for key, op, literal, regex in IQL_FILTER.findall(where):
        if op == "!=":
            raise AssertionError(f"!= not compared: {query!r}")
        filters[key] = ("==", literal) if op == "=" else ("=~", regex)
    aggregates = re.findall(r'(\w+)\("(\w+)"\)', head.partition(" FROM ")[0])
    group_tags = re.findall(r'"(\w+)"', group.split(" fill(")[0])
    return Structure(measurement, filters,
                     frozenset(f for _, f in aggregates),
                     "+".join(sorted({fn for fn, _ in aggregates})),
                     frozenset(group_tags), "$timeFilter" in where,
                     "GROUP BY time($__interval)" in query)


def _pipeline(node) -> list[tuple[str, dict]]:
    """[(function name, {argument: AST value})] of a |> chain, in order."""
    calls = []
    while node["type"] == "PipeExpression":
        calls.append(node["call"])
        node = node["argument"]
    calls.append(node)
    out = []
    for call in reversed(calls):
        args = {}
        for obj in call.get("arguments") or []:
            for prop in obj["properties"]:
                args[prop["key"]["name"]] = prop["value"]
        out.append((call["callee"]["name"], args))
    return out


def _member(node) -> str | None:
    if node["type"] == "MemberExpression" and \
            node["object"].get("name") in ("r", "v"):
        prop = node["property"]
        return prop.get("name") or prop.get("value")
    return None


def _comparisons(node, out):
    """(column, op, value, inside an or) of r.column == "s" / =~ /re/."""
    def walk(n, in_or):
        kind = n["type"]
        if kind == "ParenExpression":
            walk(n["expression"], in_or)
        elif kind == "LogicalExpression":
            walk(n["left"], in_or or n["operator"] == "or")
            walk(n["right"], in_or or n["operator"] == "or")
        elif kind == "BinaryExpression":
            column = _member(n["left"])
            if column is None or n["operator"] not in ("==", "=~") or \
                    n["right"]["type"] not in ("StringLiteral", "RegexpLiteral"):
                raise AssertionError(f"filter term not compared: {n}")
            out.append((column, n["operator"], n["right"]["value"], in_or))
        else:
            raise AssertionError(f"filter term not compared: {kind}")
    walk(node, False)


def flux_structure(ast: dict) -> Structure:
    pipeline = _pipeline(ast["body"][-1]["expression"])
    names = [name for name, _ in pipeline]
    if names[0] != "from" or "range" not in names:
        raise AssertionError(f"not from() |> range(): {names}")
    rng = dict(pipeline)["range"]
    time_range = (_member(rng["start"]) == "timeRangeStart" and
                  _member(rng["stop"]) == "timeRangeStop")
    measurement, filters, fields = None, {}, set()
    group_by, aggregate, column, windowed = set(), "", "_value", False
    for name, args in pipeline:
        if name == "filter":
            terms = []
            _comparisons(args["fn"]["body"], terms)
            for key, op, value, in_or in terms:
                if key == "_measurement":
                    measurement = value
                elif key == "_field":
                    fields.add(value)
                elif in_or:
                    raise AssertionError(f"or on {key} not compared")
                else:
                    filters[key] = (op, value)
        elif name == "group":
            group_by = {c["value"] for c in args["columns"]["elements"]}
        elif name == "aggregateWindow":
            aggregate = args["fn"]["name"]
            windowed = _member(args["every"]) == "windowPeriod"
            if "column" in args:
                column = args["column"]["value"]
    group_by.discard("_field")
    # Fields that are pivoted into columns to be filtered or grouped on are
    # not aggregated; the aggregated one is `column` after a pivot.
    if "pivot" in names and column != "_value":
        if "map" in names:
            raise AssertionError("pivot with column= and map not compared")
        aggregated = {column}
    else:
        aggregated = fields
    return Structure(measurement, filters, frozenset(aggregated), aggregate,
                     frozenset(group_by), time_range, windowed)


def fold_per_value_queries(structures: list[Structure]) -> Structure:
    """InfluxQL cannot GROUP BY a field (error_category): the category panel
    has one query per value. Identical queries but for one equality filter
    are one query grouped by that key."""
    if len(structures) == 1:
        return structures[0]
    keys = {k for s in structures for k, (op, _) in s.filters.items()
            if op == "=="}
    varying = [k for k in keys
               if len({s.filters.get(k) for s in structures}) > 1]
    if len(varying) != 1:
        raise AssertionError(f"queries differ in {varying}, not one key")
    key = varying[0]
    rest = [Structure(s.measurement,
                      {k: v for k, v in s.filters.items() if k != key},
                      s.fields, s.aggregate, s.group_by, s.time_range,
                      s.windowed) for s in structures]
    if any(r.comparable() != rest[0].comparable() for r in rest):
        raise AssertionError("per-value queries differ elsewhere")
    first = rest[0]
    return Structure(first.measurement, first.filters, first.fields,
                     first.aggregate, first.group_by | {key},
                     first.time_range, first.windowed)


# -- Tests ------------------------------------------------------------------

def load(path: Path) -> dict:
    return json.loads(path.read_text())


class GeneratedFilesTest(unittest.TestCase):
    def test_json_files_are_what_generate_py_writes(self):
        result = subprocess.run(
            [sys.executable, str(DASHBOARDS / "generate.py"), "--check"],
            capture_output=True, text=True, timeout=GENERATE_TIMEOUT)
        self.assertEqual(result.returncode, 0, result.stderr)


class ImportTest(unittest.TestCase):
    """What Grafana needs to import the files, beyond its schema."""

    def check_importable(self, dashboard: dict) -> list[str]:
        problems = []
        for key in ("uid", "title", "schemaVersion", "panels", "templating",
                    "__inputs"):
            if key not in dashboard:
                problems.append(f"no {key}")
        inputs = {i["name"] for i in dashboard.get("__inputs", [])
                  if i.get("type") == "datasource" and
                  i.get("pluginId") == "influxdb"}
        text = json.dumps(dashboard)
        used = set(re.findall(r"\$\{(DS_\w+)\}", text))
        if not used or used - inputs:
            problems.append(f"data sources used {sorted(used)}, "
                            f"__inputs declare {sorted(inputs)}")
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        ids, cells = set(), set()
        for panel in dashboard["panels"]:
            where = f"panel {panel.get('id')} {panel.get('title')!r}"
            for key in ("id", "type", "title", "gridPos", "datasource",
                        "targets"):
                if key not in panel:
                    problems.append(f"{where}: no {key}")
            if panel.get("id") in ids:
                problems.append(f"{where}: id not unique")
            ids.add(panel.get("id"))
            pos = panel["gridPos"]
            if pos["x"] + pos["w"] > 24:
                problems.append(f"{where}: wider than the 24-column grid")
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    if (x, y) in cells:
                        problems.append(f"{where}: overlaps another panel")
                        break
                    cells.add((x, y))
            refs = [t.get("refId") for t in panel.get("targets", [])]
            if not refs or len(set(refs)) != len(refs):
                problems.append(f"{where}: refIds {refs}")
            for target in panel.get("targets", []):
                if target.get("datasource") != panel["datasource"]:
                    problems.append(f"{where}: target data source differs")
                for name in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)",
                                       target["query"]):
                    name = name[0] or name[1]
                    if name not in variables and name not in MACROS:
                        problems.append(f"{where}: ${name} is not defined")
        return problems

    def test_both_dashboards_importable(self):
        for path in (INFLUXQL_FILE, FLUX_FILE):
            with self.subTest(path.name):
                self.assertEqual(self.check_importable(load(path)), [])

    def test_check_finds_problems(self):
        broken = load(INFLUXQL_FILE)
        broken["__inputs"] = []
        broken["panels"][1]["id"] = broken["panels"][0]["id"]
        broken["panels"][2]["targets"][0]["query"] += " $nosuchvar"
        problems = "\n".join(self.check_importable(broken))
        self.assertIn("__inputs declare []", problems)
        self.assertIn("id not unique", problems)
        self.assertIn("$nosuchvar is not defined", problems)

    def test_same_panels_in_both(self):
        iql, flux = load(INFLUXQL_FILE), load(FLUX_FILE)
        self.assertEqual([(p["id"], p["title"], p["gridPos"])
                          for p in iql["panels"]],
                         [(p["id"], p["title"], p["gridPos"])
                          for p in flux["panels"]])
        self.assertNotEqual(iql["uid"], flux["uid"])


class GrafanaSchemaTest(unittest.TestCase):
    def setUp(self):
        require_checker(self)

    def test_dashboards_pass_grafanas_schema(self):
        answer = run_checker(["schema", str(INFLUXQL_FILE), str(FLUX_FILE)])
        self.assertTrue(answer["schema"].startswith("@grafana/schema "))
        self.assertEqual(len(answer["results"]), 2)
        for result in answer["results"]:
            self.assertEqual(result["errors"], [], result["file"])

    def test_schema_check_can_fail(self):
        broken = load(INFLUXQL_FILE)
        del broken["panels"][0]["type"]
        broken["panels"][1]["gridPos"]["h"] = "nine"
        broken["templating"]["list"][0]["type"] = "no-such-type"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "broken.json"
            path.write_text(json.dumps(broken))
            errors = "\n".join(run_checker(["schema", str(path)])
                               ["results"][0]["errors"])
        self.assertIn("/panels/0", errors)
        self.assertIn("/panels/1/gridPos/h must be number", errors)
        self.assertIn("/templating/list/0/type", errors)


class FluxTest(unittest.TestCase):
    def setUp(self):
        require_checker(self)

    def flux_queries(self) -> list[tuple[str, str, str]]:
        dashboard = load(FLUX_FILE)
        values = variable_values(dashboard)
        out = [(f"variable {v['name']}", "", interpolate(v["query"], values))
               for v in dashboard["templating"]["list"]
               if v["type"] == "query"]
        out += [(panel["title"], t["refId"], interpolate(t["query"], values))
                for panel in dashboard["panels"] for t in panel["targets"]]
        return out

    def test_every_flux_query_parses(self):
        queries = self.flux_queries()
        self.assertGreaterEqual(len(queries), 8)
        for (where, ref, query), result in zip(
                queries, parse_flux([q for _, _, q in queries])):
            with self.subTest(f"{where} {ref}"):
                self.assertIn("v.timeRangeStart", query)
                self.assertEqual(result["errors"], [], query)
                self.assertTrue(result["semanticValid"], query)
                self.assertEqual(result["ast"]["type"], "File")

    def test_parser_reports_a_broken_query(self):
        _, _, good = self.flux_queries()[1]
        results = parse_flux([good[:-1],                       # no ")"
                              good.replace("|> range", "|> |> range"),
                              good.replace('"', "", 1)])
        for result in results:
            self.assertNotEqual(result["errors"], [])
            self.assertFalse(result["semanticValid"])
        self.assertIn("expected RPAREN, got EOF", results[0]["errors"])

    def test_semantic_check_reports_a_wrong_query(self):
        # Valid syntax, wrong Flux: an unknown function, a misspelt argument,
        # a missing required argument, a misspelt field of Grafana's v.
        _, _, good = self.flux_queries()[1]
        wrong = [good.replace("fn: sum", "fn: summ"),
                 good.replace("every:", "evry:"),
                 good.replace("group(columns: ", "group(cols: "),
                 good.replace("v.windowPeriod", "v.windowPeriods")]
        self.assertEqual(len(set(wrong)), len(wrong))
        results = parse_flux([good] + wrong)
        self.assertTrue(results[0]["semanticValid"])
        for query, result in zip(wrong, results[1:]):
            self.assertEqual(result["errors"], [], query)
            self.assertFalse(result["semanticValid"], query)

    def test_flux_twins_have_influxqls_structure(self):
        iql, flux = load(INFLUXQL_FILE), load(FLUX_FILE)
        iql_values, flux_values = variable_values(iql), variable_values(flux)
        compared = 0
        for iql_panel, flux_panel in zip(iql["panels"], flux["panels"]):
            flux_targets = flux_panel["targets"]
            queries = [interpolate(t["query"], flux_values)
                       for t in flux_targets]
            parsed = parse_flux(queries)
            flux_structs = {t["refId"]: flux_structure(p["ast"])
                            for t, p in zip(flux_targets, parsed)}
            iql_structs = {t["refId"]: influxql_structure(
                interpolate(t["query"], iql_values))
                for t in iql_panel["targets"]}
            if len(flux_structs) == 1 and len(iql_structs) > 1:
                # One Flux query grouped by a field, one InfluxQL query per value.
                iql_structs = {"A": fold_per_value_queries(
                    list(iql_structs.values()))}
            with self.subTest(iql_panel["title"]):
                self.assertEqual(sorted(flux_structs), sorted(iql_structs))
                for ref, structure in iql_structs.items():
                    self.assertEqual(flux_structs[ref].comparable(),
                                     structure.comparable(), ref)
                    self.assertTrue(structure.time_range)
                    self.assertTrue(structure.windowed)
                    compared += 1
        self.assertEqual(compared, 7)

    def test_structure_comparison_can_fail(self):
        flux = load(FLUX_FILE)
        values = variable_values(flux)
        query = interpolate(flux["panels"][0]["targets"][0]["query"], values)
        iql = load(INFLUXQL_FILE)
        twin = influxql_structure(interpolate(
            iql["panels"][0]["targets"][0]["query"], variable_values(iql)))
        variants = [query.replace('"server_name", ', ""),       # grouping
                    query.replace("r.error_type =~", "r.host =~"),  # filter
                    query.replace("fn: sum", "fn: count"),       # aggregate
                    query.replace("v.windowPeriod", "1m")]       # window
        for variant, result in zip(variants, parse_flux(variants)):
            self.assertEqual(result["errors"], [])
            self.assertNotEqual(flux_structure(result["ast"]).comparable(),
                                twin.comparable(), variant)


class InfluxQLTest(unittest.TestCase):
    """Every InfluxQL query against a real influxd holding the scenario."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.influx = InfluxD(cls.tmp.name).start()
        cls.influx.create_database(DB)
        cls.dashboard = load(INFLUXQL_FILE)
        defaults = variable_values(cls.dashboard)
        cls.errors, cls.attempts = scenario()
        cls.base_s = (int(time.time()) - 1800) // 60 * 60
        cls.start_s, cls.end_s = cls.base_s - 60, cls.base_s + 600
        cls.influx.write(line_protocol(
            cls.errors, cls.attempts, cls.base_s,
            defaults["errors_measurement"], defaults["attempts_measurement"]),
            db=DB)

    @classmethod
    def tearDownClass(cls):
        cls.influx.stop()
        cls.tmp.cleanup()

    def macros(self) -> dict:
        # What Grafana sends for an absolute range: epoch milliseconds.
        return {"timeFilter": f"time >= {self.start_s * 1000}ms and "
                              f"time <= {self.end_s * 1000}ms",
                "__interval": f"{INTERVAL_S}s"}

    def run_query(self, query: str, overrides=None) -> dict:
        """{(group-by tag values): {time ms: value}} of every series."""
        text = interpolate(query, variable_values(self.dashboard, overrides),
                           self.macros())
        answer = self.influx.query(text, db=DB, epoch="ms")
        out = {}
        group_tags = re.findall(r'"(\w+)"',
                                text.partition(" GROUP BY ")[2]
                                .split(" fill(")[0])
        for result in answer["results"]:
            for series in result.get("series", []):
                tags = series.get("tags", {})
                key = tuple(tags.get(tag, "") for tag in group_tags)
                self.assertNotIn(key, out)
                out[key] = {row[0]: row[1] for row in series["values"]}
        return out

    def expectations(self) -> dict:
        """(panel title, refId) -> expected run_query() answer."""
        errors, attempts = self.errors, self.attempts
        span = (self.base_s, self.start_s, self.end_s)
        one = lambda p: 1                                        # noqa: E731
        butler = lambda p: p.error_type in BUTLER_SOS_TYPES      # noqa: E731
        out = {
            ("Failed polls by server and type", "A"): expected_sums(
                errors, butler, ("server_name", "error_type"), one, *span),
            ("Failed session polls by virtual proxy", "A"): expected_sums(
                errors, lambda p: p.error_type == "PROXY_API",
                ("server_name", "virtual_proxy"), one, *span),
            ("Poller liveness", "A"): expected_sums(
                errors, lambda p: p.error_type == "POLLER" and
                p.category == "silent", ("server_name",), one, *span),
            ("Poller liveness", "B"): expected_sums(
                attempts, lambda p: True, ("poller_id",),
                lambda p: p.attempted, *span),
            ("Targets not polled", "A"): expected_sums(
                errors, lambda p: butler(p) and p.category == "not_polled",
                ("server_name", "error_type"), one, *span),
        }
        iql_category = next(p for p in self.dashboard["panels"]
                            if p["title"] == "Failed polls by category")
        for target in iql_category["targets"]:
            category = target["alias"]
            out[("Failed polls by category", target["refId"])] = \
                expected_sums(errors, lambda p, c=category: butler(p) and
                              p.category == c, (), one, *span)
        by = ("server_name", "error_type")
        failed = expected_sums(attempts, lambda p: True, by,
                               lambda p: p.failed, *span)
        attempted = expected_sums(attempts, lambda p: True, by,
                                  lambda p: p.attempted, *span)
        out[("Failure ratio by server and type", "A")] = {
            key: {t: failed[key][t] / attempted[key][t] for t in buckets}
            for key, buckets in attempted.items()}
        return out

    def test_scenario_is_well_formed(self):
        keys = [_series_key("e", p) for p in self.errors] + \
               [_series_key("a", p) for p in self.attempts]
        self.assertEqual(len(keys), len(set(keys)), "points would overwrite")
        stored = self.influx.query(
            'SELECT count("error_count") FROM "butler_sos_errors"', db=DB)
        self.assertEqual(stored["results"][0]["series"][0]["values"][0][1],
                         len(self.errors))

    def test_every_panel_query_returns_the_scenarios_counts(self):
        expected = self.expectations()
        ran = set()
        for panel in self.dashboard["panels"]:
            for target in panel["targets"]:
                where = (panel["title"], target["refId"])
                with self.subTest(f"{where[0]} {where[1]}"):
                    self.assertIn(where, expected)
                    got = self.run_query(target["query"])
                    want = expected[where]
                    if where[0] != "Failed polls by category" or \
                            target["alias"] in ("timeout", "not_polled"):
                        self.assertTrue(got, "no rows")
                    self.assertEqual(set(got), set(want))
                    for key, buckets in want.items():
                        self.assertEqual(set(got[key]), set(buckets), key)
                        for t, value in buckets.items():
                            self.assertAlmostEqual(got[key][t], value,
                                                   places=9, msg=(key, t))
                    ran.add(where)
        self.assertEqual(ran, set(expected))
        self.assertEqual(len(ran), 19)

    def test_totals_by_server_and_type(self):
        # The same answer, summed as a person reads the legend's "sum".
        got = self.run_query(self.dashboard["panels"][0]["targets"][0]["query"])
        totals = {key: sum(buckets.values()) for key, buckets in got.items()}
        self.assertEqual(totals, {
            ("sense1", "HEALTH_API"): 3, ("sense1", "PROXY_API"): 3,
            ("sense2", "HEALTH_API"): 4, ("sense2", "PROXY_API"): 2,
            ("qrs.example.com", "APP_NAMES_EXTRACT"): 5,
            ("east sense 01", "HEALTH_API"): 2,
            ("sense3", "HEALTH_API"): 2, ("sense3", "PROXY_API"): 1})
        self.assertFalse(any(t == "POLLER" for _, t in totals))

    def test_failure_ratio_totals(self):
        ratio = next(p for p in self.dashboard["panels"]
                     if p["title"] == "Failure ratio by server and type")
        query = ratio["targets"][0]["query"].replace(
            "GROUP BY time($__interval), ", "GROUP BY ")
        got = self.run_query(query)
        want = collections.defaultdict(lambda: [0, 0])
        for p in self.attempts:
            if p.t >= 0:
                want[(p.server_name, p.error_type)][0] += p.failed
                want[(p.server_name, p.error_type)][1] += p.attempted
        self.assertEqual(set(got), set(want))
        for key, (failed, attempted) in want.items():
            (value,) = got[key].values()
            self.assertAlmostEqual(value, failed / attempted, places=9)
            self.assertTrue(0 < value < 1, key)

    def test_variable_queries(self):
        for var in self.dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            text = interpolate(var["query"], variable_values(self.dashboard))
            answer = self.influx.query(text, db=DB)
            values = {row[1] for series in answer["results"][0]["series"]
                      for row in series["values"]}
            self.assertEqual(values, {"sense1", "sense2", "sense3",
                                      "qrs.example.com", "east sense 01"})

    def test_variables_narrow_the_queries(self):
        first = self.dashboard["panels"][0]["targets"][0]["query"]
        got = self.run_query(first, {"error_type": "(PROXY_API)",
                                     "server": "(sense1|sense2)"})
        self.assertEqual(set(got), {("sense1", "PROXY_API"),
                                    ("sense2", "PROXY_API")})
        # The measurement name is the variable's, not a literal.
        self.assertEqual(self.run_query(
            first, {"errors_measurement": "some_other_errors"}), {})


if __name__ == "__main__":
    unittest.main()
