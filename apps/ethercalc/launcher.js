// Runs EtherCalc inside a grain (see docs/developing/ethercalc.md).
//
// Usage: node launcher.js
// The same command creates a grain (the action) and continues it.
//
// EtherCalc runs in this process, started the way its own app.js starts it, with
// three changes made from outside its code:
//   - storage: no Redis in a grain, so EtherCalc falls back to its files, kept
//     under DATA_DIR (/var/dump/*.txt), each replaced whole on every write;
//   - one sheet per grain: `/` leads to the grain's sheet, SHEET;
//   - roles: a request or socket message that could change a sheet is refused
//     unless the platform says the user holds the `edit` permission
//     (X-Sandstorm-Permissions). EtherCalc takes changes over HTTP (POST, PUT,
//     DELETE, and a few GET routes that create sheets) and over socket.io, whose
//     messages are checked one by one against the permissions of the latest
//     request on the socket; both the WebSocket and the polling transport end
//     in the same check.
"use strict";

const fs = require("fs");
const { createRequire } = require("module");
const path = require("path");

const HOST = "127.0.0.1";
// The grain's one sheet (EtherCalc's room name): what `/` leads to.
const SHEET = "sheet";
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
// GET routes of EtherCalc that create or change sheets (main.js): new sheets,
// copies of a template, and the timed-trigger run that rewrites its schedule.
// Case-insensitive, as express matches routes.
const WRITING_GETS = [/^\/=?_new\/?$/i, /^\/_from\//i, /^\/[^/]+\/form\/?$/i,
  /^\/_timetrigger\/?$/i];
// The socket messages a viewer may send: asking for a sheet's content and for
// the other users' cursors, of a sheet that exists (asked for a sheet it does
// not have, EtherCalc creates it). Everything else (execute, chat, stopHuddle,
// ecell, my.ecell, and any type EtherCalc merely relays to the other users) is
// refused.
const VIEWER_MESSAGES = new Set(["ask.log", "ask.recalc", "ask.ecells"]);

function log(message) {
  process.stderr.write(`launcher: ${message}\n`);
}

// The launcher's settings, from the manifest's command environment:
// PORT (default 8000), the loopback port to serve on; DATA_DIR (default /var),
// an existing directory that holds EtherCalc's files. A bad value ends the
// launcher with one line naming it, and exit status 2.
function settings(env) {
  const port = env.PORT === undefined ? "8000" : env.PORT;
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    fail(`PORT has value '${port}': not a port number (1-65535)`);
  }
  const dataDir = env.DATA_DIR === undefined ? "/var" : env.DATA_DIR;
  if (!path.isAbsolute(dataDir)) fail(`DATA_DIR has value '${dataDir}': not an absolute path`);
  if (!fs.statSync(dataDir, { throwIfNoEntry: false })?.isDirectory()) {
    fail(`DATA_DIR has value '${dataDir}': no such directory`);
  }
  return { port: Number(port), dataDir: path.resolve(dataDir) };
}

function fail(message) {
  log(message);
  process.exit(2);
}

function mayEdit(headers) {
  const granted = String((headers && headers["x-sandstorm-permissions"]) || "");
  return granted.split(",").map((p) => p.trim()).includes("edit");
}

function refuse(res, message) {
  res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(`${message}\n`);
}

// Express middleware placed before all of EtherCalc's routes. socket.io's own
// requests (/socket.io/...) never reach it: they are checked per message below.
function guardRequests(req, res, next) {
  const edit = mayEdit(req.headers);
  const pathname = req.path;
  if (req.method === "GET" && pathname === "/") {
    // The grain is its one sheet; viewers get EtherCalc's read-only view of it.
    res.writeHead(302, { Location: edit ? `/${SHEET}` : `/${SHEET}/view` });
    res.end();
    return;
  }
  if (!edit && (!READ_METHODS.has(req.method) || WRITING_GETS.some((re) => re.test(pathname)))) {
    req.resume();
    refuse(res, "Viewers cannot change this spreadsheet.");
    return;
  }
  next();
}

// Whether a viewer's socket message `data` only reads an existing sheet. `db` is
// EtherCalc's storage client; in its file mode `db.DB` holds every key, and a
// sheet exists once it has a snapshot or a log (main.js normalises room names
// by dropping leading underscores).
function viewerMayAsk(db, data) {
  if (!data || !VIEWER_MESSAGES.has(data.type)) return false;
  const room = String(data.room).replace(/^_+/, "");
  const keys = db && db.DB;
  if (keys === null || typeof keys !== "object") return false;
  return Object.prototype.hasOwnProperty.call(keys, `snapshot-${room}`) ||
    Object.prototype.hasOwnProperty.call(keys, `log-${room}`);
}

// Wraps zappa's `on` so that every socket event handler EtherCalc registers first
// checks the socket's permissions: those of the request socket.io keeps as
// socket.request, for the WebSocket and the polling transport alike, kept up to
// date by followPermissions.
function guardSocketEvents(zappa) {
  const on = zappa.on;
  zappa.on = function (handlers) {
    const guarded = {};
    for (const [name, handler] of Object.entries(handlers)) {
      if (name === "connection" || name === "disconnect") {
        guarded[name] = handler;
        continue;
      }
      guarded[name] = function (...args) {
        if (!mayEdit(this.socket.request.headers) &&
            !(name === "data" && viewerMayAsk(zappa.__DB__, this.data))) {
          const type = this.data && this.data.type;
          log(`refused a viewer's socket message (${name} ${String(type).slice(0, 40)})`);
          return undefined;
        }
        return handler.apply(this, args);
      };
    }
    return on.call(this, guarded);
  };
}

// A new grain gets its sheet at once, empty (empty-sheet.sc, what EtherCalc saves
// for a sheet with no cells). EtherCalc only saves a sheet it has loaded, and it
// loads one only when it has content: without this, changes sent over HTTP to a
// sheet nobody had opened yet would be kept in memory only. The file is written
// beside its final name and renamed into place (EtherCalc skips names starting
// with a dot), so a first start cut short leaves no half-written sheet.
function seedSheet(dataDir) {
  const dump = path.join(dataDir, "dump");
  const sheet = path.join(dump, `snapshot-${SHEET}.txt`);
  if (fs.existsSync(sheet)) return;
  fs.mkdirSync(dump, { recursive: true });
  const fresh = path.join(dump, `.snapshot-${SHEET}.txt.new`);
  // Written, not copied: a copy would keep the package file's read-only mode.
  fs.writeFileSync(fresh, fs.readFileSync(path.join(__dirname, "empty-sheet.sc")));
  fs.renameSync(fresh, sheet);
  log(`created the empty sheet ${SHEET} in ${dump}`);
}

// EtherCalc rewrites a sheet's file in place on every change (db.js, bgsave, with
// fs.writeFileSync): a grain killed in the middle of it would keep half a sheet.
// Its writes into the dump directory go to a file beside the target instead,
// renamed over it (EtherCalc skips names starting with a dot when it loads).
function replaceDumpFilesWhole(dump) {
  const writeFileSync = fs.writeFileSync;
  fs.writeFileSync = function (file, ...rest) {
    if (typeof file === "string" && path.dirname(path.resolve(file)) === dump) {
      const fresh = path.join(dump, `.${path.basename(file)}.new`);
      writeFileSync.call(fs, fresh, ...rest);
      fs.renameSync(fresh, file);
      return undefined;
    }
    return writeFileSync.call(fs, file, ...rest);
  };
}

// Holds back zappa's server.listen until EtherCalc's storage is ready: its Redis
// client first has to fail to connect before EtherCalc switches to its files
// (db.js sets db.DB to an object then), and requests answered before that would
// be queued for a Redis that never comes. The platform's readiness probe (an
// HTTP request on the manifest port) thus succeeds only once sheets can be read.
function listenOnceStored(server, db) {
  const listen = server.listen.bind(server);
  server.listen = (...args) => {
    const attempt = () => {
      if (db.DB !== null && typeof db.DB === "object") {
        listen(...args);
      } else {
        db.once("error", () => setImmediate(attempt));
      }
    };
    attempt();
    return server;
  };
}

// The permissions that count for a socket are those of the latest request on
// it. socket.io keeps the request that opened the connection; every later
// long-polling request, and the request upgrading the connection to a WebSocket,
// carries the user's permissions as they are now: they replace the kept ones,
// so a user whose role changes to viewer cannot go on editing over a connection
// opened as an editor. (A WebSocket, once open, is closed by the gateway when
// the user's access changes.)
function followPermissions(engine) {
  const refresh = (req) => {
    const sid = new URL(req.url, "http://grain").searchParams.get("sid");
    const client = sid && Object.prototype.hasOwnProperty.call(engine.clients, sid)
      ? engine.clients[sid] : null;
    if (client && client.request && client.request !== req) {
      client.request.headers["x-sandstorm-permissions"] =
        String(req.headers["x-sandstorm-permissions"] || "");
    }
  };
  const handleRequest = engine.handleRequest;
  engine.handleRequest = function (req, res) {
    refresh(req);
    return handleRequest.call(this, req, res);
  };
  const handleUpgrade = engine.handleUpgrade;
  engine.handleUpgrade = function (req, socket, head) {
    refresh(req);
    return handleUpgrade.call(this, req, socket, head);
  };
}

function start(port, dataDir) {
  // Express (under zappa) shows stack traces in error pages unless in production.
  process.env.NODE_ENV = "production";
  // EtherCalc's storage settings (db.js): no Redis password, socket or database;
  // REDIS_HOST as an address so the failing probe needs no name lookup, after
  // which it stores sheets as files under OPENSHIFT_DATA_DIR.
  for (const name of ["REDIS_PORT", "REDIS_SOCKPATH", "REDIS_PASS", "REDIS_DB", "VCAP_SERVICES"]) {
    delete process.env[name];
  }
  process.env.REDIS_HOST = HOST;
  process.env.OPENSHIFT_DATA_DIR = dataDir;
  replaceDumpFilesWhole(path.join(dataDir, "dump"));

  // zappa resolves `include`d names next to the module that first required it:
  // require it as if from EtherCalc's app.js, as EtherCalc itself does.
  const appJs = path.join(path.dirname(require.resolve("ethercalc/package.json")), "app.js");
  const zappajs = createRequire(appJs)("zappajs");
  // What EtherCalc's app.js does with no command-line options, bound to loopback.
  zappajs(port, HOST, {}, function () {
    this.KEY = undefined;
    this.BASEPATH = "";
    this.POLLING = false;
    this.CORS = false;
    this.EXPIRE = 0;
    this.app.use(guardRequests);
    guardSocketEvents(this);
    followPermissions(this.io.eio);
    this.include("main");
    listenOnceStored(this.server, this.__DB__);
    this.server.on("listening", () => log(`serving on ${HOST}:${port}, sheet ${SHEET}`));
  });
}

for (const sig of ["SIGTERM", "SIGINT"]) {
  // EtherCalc writes each change to its files as it happens: nothing to flush.
  process.on(sig, () => process.exit(0));
}

const { port, dataDir } = settings(process.env);
seedSheet(dataDir);
start(port, dataDir);
