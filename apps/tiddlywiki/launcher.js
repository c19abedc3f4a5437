// Runs TiddlyWiki inside a grain (see docs/developing/tiddlywiki.md).
//
// Usage: node launcher.js
// The same command creates a grain (the action) and continues it: the wiki
// folder under /var is created when it does not exist yet.
//
// TiddlyWiki serves the wiki on a private loopback port; this script listens on
// the manifest's port in front of it and refuses every request that could change
// the wiki unless the platform says the user holds the `edit` permission
// (X-Sandstorm-Permissions). The check lives here rather than in TiddlyWiki's own
// readers/writers so that a viewer's save is refused whatever TiddlyWiki's
// configuration becomes.
"use strict";

const child_process = require("child_process");
const fs = require("fs");
const http = require("http");
const net = require("net");
const path = require("path");

const NODE = process.execPath;
const TIDDLYWIKI = path.join(__dirname, "node_modules", "tiddlywiki", "tiddlywiki.js");
const WIKI = process.env.WIKI_DIR || "/var/wiki";
const PORT = Number(process.env.PORT || 8000);
const WIKI_PORT = Number(process.env.WIKI_PORT || 8001);
const HOST = "127.0.0.1";
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function log(message) {
  process.stderr.write(`launcher: ${message}\n`);
}

function mayEdit(headers) {
  const granted = String(headers["x-sandstorm-permissions"] || "");
  return granted.split(",").map((p) => p.trim()).includes("edit");
}

// First start: an empty wiki with TiddlyWiki's "server" edition (which stores
// each tiddler as a file under /var/wiki/tiddlers). It is made beside the final
// folder and renamed into place, so a first start cut short leaves no half-made
// wiki: the next start makes it again.
function initWiki() {
  if (fs.existsSync(WIKI)) return;
  const fresh = `${WIKI}.new`;
  fs.rmSync(fresh, { recursive: true, force: true });
  log(`creating the wiki in ${WIKI}`);
  const made = child_process.spawnSync(NODE, [TIDDLYWIKI, fresh, "--init", "server"],
    { stdio: "inherit" });
  if (made.status !== 0) {
    log(`tiddlywiki --init failed (${made.status ?? made.signal})`);
    process.exit(1);
  }
  fs.renameSync(fresh, WIKI);
}

function startWiki() {
  // TiddlyWiki takes the user's name from the platform's header (it decodes the
  // percent-encoding itself) and its browser side records it as the author of
  // the tiddlers that user saves. Anyone may read and write as far as TiddlyWiki
  // is concerned: the front below is what refuses viewers' writes.
  const wiki = child_process.spawn(NODE, [TIDDLYWIKI, WIKI, "--listen",
    `host=${HOST}`, `port=${WIKI_PORT}`, "authenticated-user-header=x-sandstorm-username"],
  { stdio: ["ignore", "inherit", "inherit"] });
  wiki.on("exit", (code, signal) => {
    log(`tiddlywiki exited (${code ?? signal})`);
    process.exit(code === 0 ? 0 : 1);
  });
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      wiki.kill("SIGTERM");
    });
  }
  return wiki;
}

// Resolves once TiddlyWiki accepts connections, so the platform's readiness
// probe (an HTTP request on the manifest port) only succeeds when the wiki does.
function waitForWiki() {
  return new Promise((resolve) => {
    const attempt = () => {
      const socket = net.connect(WIKI_PORT, HOST);
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

// TiddlyWiki's browser side asks GET /status whether the wiki is read-only; when
// it is, it hides its editing buttons and sends no saves. Without this a viewer's
// wiki keeps trying to save (its story list first, every few seconds, each
// refused below) and shows an error for every attempt.
function answerStatusReadOnly(req, res, agent) {
  const upstream = http.get({ host: HOST, port: WIKI_PORT, path: req.url,
    headers: req.headers, agent }, (answer) => {
    const chunks = [];
    answer.on("data", (chunk) => chunks.push(chunk));
    answer.on("end", () => {
      let status;
      try {
        status = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (err) {
        res.writeHead(502, { "Content-Type": "text/plain" });
        res.end();
        return;
      }
      const body = Buffer.from(JSON.stringify({ ...status, read_only: true }), "utf8");
      res.writeHead(answer.statusCode, { "Content-Type": "application/json",
        "Content-Length": body.length });
      res.end(body);
    });
  });
  upstream.on("error", (err) => {
    log(`upstream: ${err.message}`);
    if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
    res.end();
  });
}

function serveFront() {
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    if (!READ_METHODS.has(req.method) && !mayEdit(req.headers)) {
      req.resume();
      res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("Viewers cannot change this wiki.\n");
      return;
    }
    if (req.method === "GET" && req.url.split("?")[0] === "/status" && !mayEdit(req.headers)) {
      req.resume();
      answerStatusReadOnly(req, res, agent);
      return;
    }
    const upstream = http.request({
      host: HOST, port: WIKI_PORT, method: req.method, path: req.url,
      headers: req.headers, agent,
    }, (answer) => {
      res.writeHead(answer.statusCode, answer.rawHeaders);
      answer.pipe(res);
    });
    upstream.on("error", (err) => {
      log(`upstream: ${err.message}`);
      if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
      res.end();
    });
    req.pipe(upstream);
  });
  server.listen(PORT, HOST, () => log(`serving on ${HOST}:${PORT}`));
}

initWiki();
startWiki();
waitForWiki().then(serveFront);
