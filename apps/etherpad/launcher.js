// Runs Etherpad inside a grain (see docs/developing/etherpad.md).
//
// Usage: node launcher.js
// The same command creates a grain (the action) and continues it.
//
// One process: Etherpad runs in this Node.js process on a private loopback port
// (ETHERPAD_PORT), and front.js listens on the manifest's port (PORT) in front of
// it. Running Etherpad in-process lets the launcher replace three start-up steps
// that need a network or a writable install without patching Etherpad's files:
// the update check, the `npm ls` that lists plugins, and the `npm --version` log.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const Module = require("module");
const path = require("path");

const front = require("./front");

const ROOT = path.join(__dirname, "etherpad");
const SRC = path.join(ROOT, "src");
const DATA = process.env.ETHERPAD_DATA || "/var/etherpad";
const PORT = Number(process.env.PORT || 8000);
const ETHERPAD_PORT = Number(process.env.ETHERPAD_PORT || 8001);
const HOST = "127.0.0.1";
// The grain's one pad. Its ID is guessable, so viewers are kept off it by
// Etherpad's own read-only accounts (below), not by hiding it.
const PAD = "pad";
const SETTINGS = "/tmp/etherpad-settings.json";

function log(message) {
  process.stderr.write(`launcher: ${message}\n`);
}

// A secret kept in the grain's storage (made on first start): author tokens are
// derived from it and the user's grain-specific ID.
function grainSecret() {
  const file = path.join(DATA, "launcher-secret");
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  const secret = crypto.randomBytes(32).toString("hex");
  fs.writeFileSync(`${file}.new`, secret, { mode: 0o600 });
  fs.renameSync(`${file}.new`, file);
  return secret;
}

// Etherpad's settings, written fresh at every start (they hold this run's
// passwords, so into the grain's private /tmp, not its storage). Two accounts
// stand for the platform's roles: the front signs every request in as "editor"
// or "viewer" from X-Sandstorm-Permissions; Etherpad itself then refuses every
// change from a "viewer" session (readOnly), whichever pad ID it names.
function writeSettings(passwords) {
  const settings = {
    title: "Etherpad",
    ip: HOST,
    port: ETHERPAD_PORT,
    dbType: "dirty",
    dbSettings: { filename: path.join(DATA, "dirty.db") },
    // Served as written: minifying at each start costs seconds of CPU.
    minify: false,
    skinName: "colibris",
    socketTransportProtocols: ["websocket", "polling"],
    suppressErrorsInPadText: true,
    defaultPadText: "",
    requireAuthentication: true,
    requireAuthorization: false,
    users: {
      editor: { password: passwords.editor, readOnly: false },
      viewer: { password: passwords.viewer, readOnly: true },
    },
    // No pad but the grain's own: the launcher creates it before serving.
    editOnly: true,
    // Etherpad's limits count per client address, and every request reaches it
    // from the front on 127.0.0.1: they are shared by everyone on the grain, so
    // they are set for a room of writers rather than for one.
    commitRateLimiting: { duration: 1, points: 100 },
    importExportRateLimiting: { windowMs: 90000, max: 300 },
    trustProxy: false,
    showSettingsInAdminPage: false,
    exposeVersion: false,
    loglevel: "WARN",
    logconfig: { appenders: [{ type: "console" }] },
  };
  fs.writeFileSync(SETTINGS, JSON.stringify(settings), { mode: 0o600 });
}

// Parts of Etherpad a grain does not serve; their server hooks are not loaded.
// The HTTP API (openapi, apicalls) would be reachable only with the API key, the
// admin pages only with an admin account (there is none), and loading the API's
// OpenAPI validator alone costs over a second of start-up.
const UNUSED_PARTS = new Set(["apicalls", "openapi", "admin", "adminplugins", "adminsettings",
  "tests"].map((name) => `ep_etherpad-lite/${name}`));

// Replaces the module at `file` (before anything loads it) with `exports`.
function provide(file, exports) {
  const resolved = require.resolve(file);
  const stub = new Module(resolved, module);
  stub.filename = resolved;
  stub.loaded = true;
  stub.exports = exports;
  require.cache[resolved] = stub;
}

// Makes Etherpad start offline, from a read-only install, without npm, and
// faster; every change is made here, none in Etherpad's files.
function adaptEtherpad() {
  // plugins.js logs `npm --version` when loaded; plugins are never installed in
  // a grain (the package is read-only), so npm is not run at all (and not packed).
  const runCmdPath = path.join(SRC, "node/utils/run_cmd.js");
  const runCmd = require(runCmdPath);
  provide(runCmdPath, (args, opts) => {
    if (args[0] !== "npm") return runCmd(args, opts);
    if (args[1] === "--version") return Promise.resolve("not run in a grain");
    return Promise.reject(new Error("npm is not run inside a grain"));
  });
  // The update check would call static.etherpad.org; a grain has no network.
  // (Loading the real module also loads `request`, a third of a second.)
  provide(path.join(SRC, "node/utils/UpdateCheck.js"), {
    check() {}, needsUpdate(cb) { if (cb) cb(false); }, getLatestVersion() { return null; },
  });
  // Minify.js starts two worker threads for minifying when loaded; with
  // `minify: false` they never get work, so the pool is made on first use.
  const threadsPath = require.resolve("threads", { paths: [path.join(SRC, "node/utils")] });
  const threads = require(threadsPath);
  class LazyPool {
    constructor(...args) { this.args = args; this.pool = null; }
    queue(task) {
      if (this.pool === null) this.pool = new threads.Pool(...this.args);
      return this.pool.queue(task);
    }
    async terminate(force) { if (this.pool !== null) await this.pool.terminate(force); }
  }
  provide(threadsPath, { ...threads, Pool: LazyPool });
  // The installed plugins are known when the package is built: Etherpad alone.
  // Etherpad would learn it by running `npm ls`, which costs seconds.
  const pkg = require(path.join(SRC, "package.json"));
  const plugins = require(path.join(SRC, "static/js/pluginfw/plugins"));
  plugins.getPackages = async () => ({
    "ep_etherpad-lite": {
      name: pkg.name, version: pkg.version,
      path: path.join(ROOT, "node_modules", "ep_etherpad-lite"), realPath: SRC,
    },
  });
  const shared = require(path.join(SRC, "static/js/pluginfw/shared"));
  const extractHooks = shared.extractHooks;
  shared.extractHooks = (parts, hookSetName, ...rest) => extractHooks(
    hookSetName === "hooks" ? parts.filter((part) => !UNUSED_PARTS.has(part.full_name)) : parts,
    hookSetName, ...rest);
}

async function main() {
  fs.mkdirSync(DATA, { recursive: true });
  const secret = grainSecret();
  const passwords = {
    editor: crypto.randomBytes(24).toString("hex"),
    viewer: crypto.randomBytes(24).toString("hex"),
  };
  writeSettings(passwords);
  // Etherpad reads its options from the command line when its modules load.
  process.argv = [process.argv[0], path.join(SRC, "node/server.js"),
    "--settings", SETTINGS,
    "--sessionkey", path.join(DATA, "SESSIONKEY.txt"),
    "--apikey", path.join(DATA, "APIKEY.txt")];
  adaptEtherpad();
  const server = require(path.join(SRC, "node/server.js"));
  await server.start();
  const pads = require(path.join(SRC, "node/db/PadManager"));
  await pads.getPad(PAD);
  const readOnlyId = await require(path.join(SRC, "node/db/ReadOnlyManager"))
    .getReadOnlyId(PAD);
  // The author behind a token carries the user's platform name, set each time
  // they open the pad: viewers (whose own name changes Etherpad drops) are
  // named too, and the name follows changes of the user's account.
  const authors = require(path.join(SRC, "node/db/AuthorManager"));
  const nameAuthor = async (token, name) => {
    await authors.setAuthorName(await authors.getAuthor4Token(token), name);
  };
  const door = front.serve({
    port: PORT, host: HOST, upstreamPort: ETHERPAD_PORT, pad: PAD, readOnlyPad: readOnlyId,
    passwords, secret, nameAuthor,
  }).on("listening", () => log(`serving on ${HOST}:${PORT}`));
  // Etherpad owns SIGTERM (it removes every other listener) and, once stopped,
  // waits for the process to have nothing left to do: the front closes first.
  const stop = server.stop;
  server.stop = async () => {
    door.shutdown();
    await stop();
  };
}

main().catch((err) => {
  log(`start failed: ${err.stack || err}`);
  process.exit(1);
});
