#!/usr/bin/env node
// Offline checks of Grafana dashboard JSON for tests/dashboards/test_dashboards.py,
// with the npm packages pinned in package.json and package-lock.json beside
// this file (scripts/install-deps.sh runs `npm ci`).
//
//   node check.mjs flux  < QUERIES.json   # ["flux query", ...]
//   node check.mjs schema DASHBOARD.json...
//
// flux: parses each query with InfluxData's own Flux parser (npm
// @influxdata/flux, the Rust parser compiled to WebAssembly) and prints
// [{"errors": [message, ...], "semanticValid": bool, "ast": <the parser's AST
// as JSON>}, ...], one per query in order. Syntax errors are not thrown: the
// parser records them in `errors` arrays on the AST nodes, which this
// collects. semanticValid is the Flux language server's semantic check (npm
// @influxdata/flux-lsp-browser, `Flux.is_valid()`: names, types and the
// standard library's function signatures, with `v` declared as Grafana
// supplies it); it says only yes or no.
//
// schema: validates each dashboard against a JSON Schema generated (by
// ts-json-schema-generator) from Grafana's published TypeScript type
// `Dashboard` (npm @grafana/schema, raw/dashboard/x, itself generated from
// Grafana's CUE dashboard kind), with ajv. The export-only keys `__inputs`,
// `__requires` and `__elements`, which Grafana's import consumes before it
// stores the dashboard, are not part of that type and are removed first (the
// Python test checks them). Prints {"schema": VERSION, "results": [{"file",
// "errors": [..]}]}.
//
// Exit status: 0 checked (look at the errors), 2 bad usage or input.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {createRequire} from "node:module";
import {pathToFileURL} from "node:url";

const require = createRequire(import.meta.url);

// @influxdata/flux and @influxdata/flux-lsp-browser are wasm-bindgen
// bundler builds: their glue module starts with
// `import * as wasm from './X_bg.wasm'`, which Node cannot import. A copy of
// the glue whose first line takes the instance from us instead is loaded,
// and the wasm module is instantiated with that copy's exports as its
// imports (each import of the wasm module names one export of the glue).
// The lsp glue also ends by caching views of the wasm memory at load time;
// those lines move into the setter.
async function loadBindgen(packageName, glueFile, wasmFile) {
  const dir = path.dirname(require.resolve(`${packageName}/package.json`));
  const source = fs.readFileSync(path.join(dir, glueFile), "utf8");
  const firstLine = `import * as wasm from './${wasmFile}';`;
  if (!source.startsWith(firstLine)) {
    throw new Error(`${packageName}: ${glueFile} no longer starts with the wasm import`);
  }
  const eager = /^cached\w+ = new \w+Array\(wasm\.memory\.buffer\);$/gm;
  const atLoad = source.match(eager) ?? [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qfp-flux-"));
  try {
    const copy = path.join(tmp, "glue.mjs");
    fs.writeFileSync(copy, `let wasm; export function __setWasm(w) { wasm = w; ${atLoad.join(" ")} }` +
                     source.slice(firstLine.length).replace(eager, ""));
    const glue = await import(pathToFileURL(copy).href);
    const module = await WebAssembly.compile(fs.readFileSync(path.join(dir, wasmFile)));
    const imports = {};
    for (const {module: from, name} of WebAssembly.Module.imports(module)) {
      if (typeof glue[name] !== "function") {
        throw new Error(`${packageName}: the wasm module imports ${from}.${name}, which ${glueFile} lacks`);
      }
      (imports[from] ??= {})[name] = glue[name];
    }
    const instance = await WebAssembly.instantiate(module, imports);
    glue.__setWasm(instance.exports);
    return glue;
  } finally {
    fs.rmSync(tmp, {recursive: true, force: true});
  }
}

// What InfluxDB's own UI declares for a dashboard query; Grafana supplies the
// same three values. Only their types matter to the check.
const GRAFANA_V = "option v = {timeRangeStart: 2026-01-01T00:00:00Z, " +
                  "timeRangeStop: 2026-01-01T01:00:00Z, windowPeriod: 10s}\n";

// Flux wants imports first: the option goes after the leading import lines.
function withGrafanaV(query) {
  const lines = query.split("\n");
  let n = 0;
  while (n < lines.length && /^\s*(import\s|$)/.test(lines[n])) n++;
  return [...lines.slice(0, n), GRAFANA_V + lines.slice(n).join("\n")].join("\n");
}

function collectErrors(node, out = []) {
  if (Array.isArray(node)) {
    for (const item of node) collectErrors(item, out);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "errors" && Array.isArray(value)) {
        for (const e of value) out.push(typeof e === "string" ? e : (e.msg ?? JSON.stringify(e)));
      } else {
        collectErrors(value, out);
      }
    }
  }
  return out;
}

async function fluxCommand() {
  const queries = JSON.parse(fs.readFileSync(0, "utf8"));
  if (!Array.isArray(queries) || !queries.every((q) => typeof q === "string")) {
    throw new UsageError("flux: standard input must be a JSON list of strings");
  }
  const {parse} = await loadBindgen("@influxdata/flux", "flux.js", "flux_bg.wasm");
  const {Flux} = await loadBindgen("@influxdata/flux-lsp-browser", "flux-lsp-browser_bg.js",
                                   "flux-lsp-browser_bg.wasm");
  const results = queries.map((query) => {
    const ast = parse(query);
    const checked = new Flux(withGrafanaV(query));
    try {
      return {errors: collectErrors(ast), semanticValid: checked.is_valid(), ast};
    } finally {
      checked.free();
    }
  });
  process.stdout.write(JSON.stringify(results));
}

const EXPORT_ONLY_KEYS = ["__inputs", "__requires", "__elements"];

function schemaCommand(files) {
  if (files.length === 0) throw new UsageError("schema: name at least one dashboard file");
  const schemaPackage = require.resolve("@grafana/schema/package.json");
  const version = JSON.parse(fs.readFileSync(schemaPackage, "utf8")).version;
  const types = path.join(path.dirname(schemaPackage), "dist/types/raw/dashboard/x/types.gen.d.ts");
  const tsj = require("ts-json-schema-generator");
  const schema = tsj.createGenerator({path: types, type: "Dashboard", skipTypeCheck: true,
                                      expose: "export"}).createSchema("Dashboard");
  const Ajv = require("ajv");
  const validate = new Ajv({allErrors: true, strict: false}).compile(schema);
  const results = files.map((file) => {
    let dashboard;
    try {
      dashboard = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      return {file, errors: [`unreadable: ${e.message}`]};
    }
    for (const key of EXPORT_ONLY_KEYS) delete dashboard[key];
    const ok = validate(dashboard);
    return {file, errors: ok ? [] : validate.errors.map(
        (e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`)};
  });
  process.stdout.write(JSON.stringify({schema: `@grafana/schema ${version}`, results}));
}

class UsageError extends Error {}

try {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "flux") await fluxCommand();
  else if (command === "schema") schemaCommand(rest);
  else throw new UsageError("usage: node check.mjs flux < QUERIES.json | schema FILE...");
} catch (e) {
  process.stderr.write(`${e instanceof UsageError ? "" : e.stack}\n${e.message}\n`);
  process.exit(2);
}
