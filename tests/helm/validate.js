#!/usr/bin/env node
// Validates Kubernetes objects against Kubernetes' own OpenAPI schemas,
// offline, with the npm package kubernetes-models (pinned in package.json and
// package-lock.json beside this file; scripts/install-deps.sh runs `npm ci`).
//
//   node validate.js FILE
//
// FILE is JSON: either {"manifests": [{"object": {...}}, ...]} (what
// tests/helm/render writes) or a list of objects. Prints one JSON document,
// {"kubernetesModels": VERSION, "results": [{"index", "apiVersion", "kind",
// "name", "errors": [..]}]}, one result per object in order; an object
// passes when its errors are empty. Exit status: 0 all pass, 1 some fail,
// 2 bad usage or unreadable input.
//
// Two checks per object:
//  - the schema: `new Model(obj).validate()` (types, enums, required keys);
//  - unknown fields, which the schemas allow but the API server refuses
//    (strict field validation, the default of kubectl and Helm): every key of
//    an object must be read by the schema's validator. The validators are
//    compiled ajv code that reads each property the schema declares and
//    enumerates the keys of free-form maps (labels, data), so a key that is
//    never read and never enumerated is not in the schema.
"use strict";

const fs = require("fs");
const path = require("path");

const MODELS = "kubernetes-models";

function loadModel(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" ||
      !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) {
    return null;
  }
  try {
    return require(`${MODELS}/${apiVersion}/${kind}`)[kind] || null;
  } catch (e) {
    if (e.code === "MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      return null;
    }
    throw e;
  }
}

// A proxy over a plain object tree that records, per object, which keys were
// read and whether the keys were enumerated.
function tracked(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  const record = {value, where, read: new Set(), enumerated: false};
  seen.push(record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key !== "string" || !Object.prototype.hasOwnProperty.call(target, key)) {
        return Reflect.get(target, key, receiver);
      }
      record.read.add(key);
      if (!children.has(key)) {
        children.set(key, tracked(target[key], `${where}/${key}`, seen));
      }
      return children.get(key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(Model, object) {
  // The model deep-copies the object; its validate() checks `this`.
  const copy = new Model(object);
  const seen = [];
  Model.prototype.validate.call(tracked(copy, "", seen));
  const unknown = [];
  for (const {value, where, read, enumerated} of seen) {
    if (Array.isArray(value) || enumerated) continue;
    for (const key of Object.keys(value)) {
      if (!read.has(key)) unknown.push(`data${where}/${key} is an unknown field`);
    }
  }
  return unknown;
}

function validate(object) {
  const meta = (object && object.metadata) || {};
  const result = {
    apiVersion: object && object.apiVersion,
    kind: object && object.kind,
    name: meta.name,
    errors: [],
  };
  const Model = loadModel(result.apiVersion, result.kind);
  if (Model === null) {
    result.errors.push(`${MODELS} has no model for ${result.apiVersion} ${result.kind}`);
    return result;
  }
  try {
    new Model(object).validate();
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;  // not a validation error
    // ajv's errors, their messages already in English (ajv-i18n).
    result.errors.push(...e.errors.map((err) => `data${err.instancePath} ${err.message}`));
    return result;
  }
  result.errors.push(...unknownFields(Model, object));
  return result;
}

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write("usage: node validate.js FILE\n");
    return 2;
  }
  let input;
  try {
    input = JSON.parse(fs.readFileSync(argv[0], "utf8"));
  } catch (e) {
    process.stderr.write(`validate.js: ${argv[0]}: ${e.message}\n`);
    return 2;
  }
  const objects = Array.isArray(input) ? input
      : (input.manifests || []).map((m) => m.object);
  const results = objects.map((o, index) => ({index, ...validate(o)}));
  const version = JSON.parse(fs.readFileSync(
      path.join(__dirname, "node_modules", MODELS, "package.json"), "utf8")).version;
  process.stdout.write(JSON.stringify({kubernetesModels: version, results}, null, 1) + "\n");
  return results.every((r) => r.errors.length === 0) ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
