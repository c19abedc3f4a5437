// Removes from an npm install of Etherpad the packages that a grain never loads
// (see docs/developing/etherpad.md, "Building").
//
// Usage: node prune.js NODE_MODULES
// Keeps every package reachable from ep_etherpad-lite in npm's record of the
// install (NODE_MODULES/.package-lock.json), leaving out two edges: Etherpad's
// `npm` (used only to list and install plugins, which a grain never does) and
// ueberdb2's drivers for database servers (a grain uses its dirty.db file).
// Run before ep_etherpad-lite is moved out of NODE_MODULES; running it again
// removes nothing more.
"use strict";

const fs = require("fs");
const path = require("path");

const UNUSED_EDGES = {
  "node_modules/ep_etherpad-lite": new Set(["npm"]),
  "node_modules/ueberdb2": new Set(["cassandra-driver", "elasticsearch", "mongodb", "mssql",
    "mysql", "nano", "pg", "redis", "rethinkdb", "simple-git", "sqlite3"]),
};

// Where Node.js would find `name` when required from the package at `from`
// (both as paths relative to the install, e.g. "node_modules/a/node_modules/b").
function resolve(packages, from, name) {
  let base = from;
  for (;;) {
    const candidate = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!base) return null;
    const cut = base.lastIndexOf("/node_modules/");
    base = cut < 0 ? "" : base.slice(0, cut);
  }
}

function main(nodeModules) {
  const lock = JSON.parse(fs.readFileSync(path.join(nodeModules, ".package-lock.json"), "utf8"));
  const packages = lock.packages;
  const used = new Set();
  const todo = ["node_modules/ep_etherpad-lite"];
  while (todo.length) {
    const at = todo.pop();
    if (used.has(at)) continue;
    used.add(at);
    const info = packages[at];
    const skip = UNUSED_EDGES[at] || new Set();
    for (const name of Object.keys({ ...info.dependencies, ...info.optionalDependencies })) {
      if (skip.has(name)) continue;
      const found = resolve(packages, at, name);
      if (found) todo.push(found);
    }
  }
  if (!used.has("node_modules/ueberdb2") || !used.has("node_modules/express")) {
    throw new Error(`${nodeModules} does not look like an install of ep_etherpad-lite`);
  }
  let removed = 0;
  const root = path.dirname(nodeModules);
  for (const at of Object.keys(packages)) {
    if (!at.startsWith("node_modules/") || used.has(at)) continue;
    const inside = [...used].some((kept) => kept.startsWith(`${at}/`));
    if (inside) continue;
    fs.rmSync(path.join(root, at), { recursive: true, force: true });
    removed += 1;
  }
  // Scope folders (@azure…) left empty.
  for (const entry of fs.readdirSync(nodeModules)) {
    const dir = path.join(nodeModules, entry);
    if (entry.startsWith("@") && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
  }
  process.stderr.write(`prune: kept ${used.size} packages, removed ${removed}\n`);
}

try {
  if (!process.argv[2]) throw new Error("usage: node prune.js NODE_MODULES");
  main(process.argv[2]);
} catch (err) {
  process.stderr.write(`prune: ${err.code === "ENOENT" ? `no npm install record at ${err.path}`
    : err.message}\n`);
  process.exit(1);
}
