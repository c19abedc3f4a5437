// The grain's front door: listens on the manifest's port and relays to Etherpad
// (see docs/developing/etherpad.md, "Roles" and "Authors").
//
// For every request it
//  - signs the user in to Etherpad as its "editor" or "viewer" account, from the
//    `edit` permission in X-Sandstorm-Permissions (HTTP basic credentials that
//    only this process knows; anything the browser sent is replaced);
//  - keeps one Etherpad session cookie per role (`ep_sid_editor`, `ep_sid_viewer`),
//    so a session started with one role is never reused with another;
//  - keeps the grain to its one pad: `/` leads to it, viewers are sent to its
//    read-only ID, other pad names, the admin pages and the HTTP API are absent;
//  - refuses, with 403, a viewer's request that could change anything, other
//    than the socket.io transport whose messages Etherpad itself filters;
//  - gives the pad page the user's name (`?userName=`) and an author token
//    derived from the user's grain-specific ID, so each person is one author
//    with one color across sessions, and names that author after the user.
"use strict";

const crypto = require("crypto");
const http = require("http");
const net = require("net");

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
// Non-read requests a viewer still needs: the socket.io polling transport
// (Etherpad drops a read-only session's changes) and the editor's error reports.
const VIEWER_WRITABLE = /^\/(?:socket\.io\/|jserror\/?$|ep\/pad\/connection-diagnostic-info$)/;
const ABSENT = /^\/(?:admin|api|tests)(?:\/|$)/i;
const SESSION_COOKIE = "express_sid";
const USER_ID = /^[0-9a-f]{32}$/;
// Etherpad's pages that run its scripts: the pad and its time slider.
const PAGES = /^\/p\/[^/]+(?:\/timeslider)?$/;
const TOKEN_DAYS = 60;

function roleOf(headers) {
  const granted = String(headers["x-sandstorm-permissions"] || "");
  return granted.split(",").map((p) => p.trim()).includes("edit") ? "editor" : "viewer";
}

function userName(headers) {
  const raw = headers["x-sandstorm-username"];
  if (!raw) return null;
  try {
    return decodeURIComponent(raw);
  } catch (err) {
    return null;
  }
}

// The session's address is https, or a *.localhost name (which browsers treat
// as secure): the grain is framed by the shell, another site, so its cookies
// must be SameSite=None, which needs Secure; Partitioned keeps them where
// third-party cookies are blocked. The gateway sets its own cookie the same way.
function crossSiteCookies(headers) {
  const host = String(headers.host || "").replace(/:\d+$/, "").toLowerCase();
  return headers["x-forwarded-proto"] === "https" || host === "localhost" ||
    host.endsWith(".localhost");
}

function cookieAttributes(headers) {
  return crossSiteCookies(headers) ? "; Secure; SameSite=None; Partitioned" : "; SameSite=Lax";
}

// The browser's cookies as Etherpad should see them: the role's own session
// cookie under Etherpad's name, the other role's and any bare one dropped.
function requestCookies(header, role) {
  if (!header) return null;
  const own = `ep_sid_${role}`;
  const kept = [];
  for (const part of String(header).split(";")) {
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (name === own) kept.push(`${SESSION_COOKIE}=${part.slice(eq + 1).trim()}`);
    else if (name !== SESSION_COOKIE && !name.startsWith("ep_sid_") && name) {
      kept.push(part.trim());
    }
  }
  return kept.length ? kept.join("; ") : null;
}

// Etherpad's Set-Cookie values for the browser: its session cookie renamed for
// the role, and the site attributes this session needs.
function responseCookie(value, role, attributes) {
  const parts = String(value).split(";").map((p) => p.trim()).filter((p) => {
    const name = p.split("=", 1)[0].toLowerCase();
    return name !== "samesite" && name !== "secure" && name !== "partitioned";
  });
  if (parts[0].startsWith(`${SESSION_COOKIE}=`)) {
    parts[0] = `ep_sid_${role}=${parts[0].slice(SESSION_COOKIE.length + 1)}`;
  }
  return parts.join("; ") + attributes;
}

// Etherpad's pages set cookies from script too (the author token, preferences);
// in a frame of another site the browser keeps only SameSite=None; Secure ones,
// and Etherpad stops with "Cookie could not be found" otherwise. This script,
// put first in each page, gives every cookie the page sets those attributes.
const COOKIE_SCRIPT = "<script>(function () {" +
  "var real = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');" +
  "Object.defineProperty(document, 'cookie', {configurable: true," +
  " get: function () { return real.get.call(document); }," +
  " set: function (value) {" +
  "  var kept = String(value).split(';').filter(function (part) {" +
  "   return !/^\\s*(samesite|secure|partitioned)\\b/i.test(part); });" +
  "  real.set.call(document, kept.join(';') + '; SameSite=None; Secure; Partitioned'); }});" +
  "})();</script>";

// Right after the <head> tag, or after <html> (Etherpad's pages leave out <head>).
function withCookieScript(html) {
  const tag = html.match(/<head(?:\s[^>]*)?>/i) || html.match(/<html(?:\s[^>]*)?>/i);
  if (!tag) return COOKIE_SCRIPT + html;
  const end = tag.index + tag[0].length;
  return html.slice(0, end) + COOKIE_SCRIPT + html.slice(end);
}

function upstreamHeaders(req, role, options) {
  const headers = { ...req.headers };
  const credentials = `${role}:${options.passwords[role]}`;
  headers.authorization = `Basic ${Buffer.from(credentials).toString("base64")}`;
  const cookies = requestCookies(req.headers.cookie, role);
  if (cookies) headers.cookie = cookies;
  else delete headers.cookie;
  return headers;
}

function authorToken(secret, userId) {
  return `t.${crypto.createHmac("sha256", secret).update(userId).digest("hex").slice(0, 40)}`;
}

function plain(res, status, text, extra = {}) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...extra });
  res.end(`${text}\n`);
}

// What to do with a request before it reaches Etherpad: null to relay it, else
// {status, text, location}.
function route(req, url, role, options) {
  if (ABSENT.test(url.pathname)) {
    return { status: 404, text: "Not available in this grain." };
  }
  if (!READ_METHODS.has(req.method) && role !== "editor" &&
      !VIEWER_WRITABLE.test(url.pathname)) {
    return { status: 403, text: "Viewers cannot change this pad." };
  }
  const own = role === "editor" ? options.pad : options.readOnlyPad;
  const name = userName(req.headers);
  const named = name === null ? "" : `?userName=${encodeURIComponent(name)}`;
  if (url.pathname === "/") {
    return { status: 302, location: `/p/${own}${named}` };
  }
  const pad = url.pathname.match(/^\/p\/([^/]*)(\/.*)?$/);
  if (!pad) return null;
  let id;
  try {
    id = decodeURIComponent(pad[1]);
  } catch (err) {
    return { status: 400, text: "Bad pad name." };
  }
  if (id !== options.pad && id !== options.readOnlyPad) {
    return { status: 404, text: "This grain holds one pad." };
  }
  if (id !== own && role !== "editor") {
    return { status: 302, location: `/p/${own}${pad[2] || ""}${url.search}` };
  }
  if (!pad[2] && name !== null && !url.searchParams.has("userName") && req.method === "GET") {
    return { status: 302, location: `/p/${id}${named}` };
  }
  return null;
}

// The author token of the user making a pad page request, or null (anonymous
// visitors, other requests).
function tokenFor(req, options) {
  const userId = String(req.headers["x-sandstorm-user-id"] || "");
  if (!/^\/p\/[^/]+$/.test(req.url.split("?")[0]) || !USER_ID.test(userId)) return null;
  return authorToken(options.secret, userId);
}

async function relay(req, res, role, options, agent) {
  const attributes = cookieAttributes(req.headers);
  const token = tokenFor(req, options);
  const name = userName(req.headers);
  if (token !== null && name !== null) {
    try {
      await options.nameAuthor(token, name);
    } catch (err) {
      process.stderr.write(`front: naming the author: ${err.message}\n`);
    }
  }
  const upstream = http.request({
    host: options.host, port: options.upstreamPort, method: req.method, path: req.url,
    headers: upstreamHeaders(req, role, options), agent,
  }, (answer) => {
    const headers = [];
    for (let i = 0; i < answer.rawHeaders.length; i += 2) {
      const name = answer.rawHeaders[i];
      const value = answer.rawHeaders[i + 1];
      if (name.toLowerCase() === "www-authenticate") continue;
      headers.push(name, name.toLowerCase() === "set-cookie"
        ? responseCookie(value, role, attributes) : value);
    }
    if (token !== null) {
      headers.push("Set-Cookie", `token=${token}; Path=/; Max-Age=${TOKEN_DAYS * 86400}` +
        attributes);
    }
    // Only Etherpad's own pages, not an exported HTML document.
    const html = PAGES.test(req.url.split("?")[0]) &&
      /^text\/html/i.test(String(answer.headers["content-type"] || "")) &&
      !answer.headers["content-encoding"] && crossSiteCookies(req.headers);
    if (!html) {
      res.writeHead(answer.statusCode, headers);
      answer.pipe(res);
      return;
    }
    const chunks = [];
    answer.on("data", (chunk) => chunks.push(chunk));
    answer.on("end", () => {
      const body = Buffer.from(withCookieScript(Buffer.concat(chunks).toString("utf8")));
      const kept = [];
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i].toLowerCase();
        if (name !== "content-length" && name !== "etag") kept.push(headers[i], headers[i + 1]);
      }
      kept.push("Content-Length", String(body.length));
      res.writeHead(answer.statusCode, kept);
      res.end(body);
    });
  });
  upstream.on("error", (err) => {
    process.stderr.write(`front: upstream: ${err.message}\n`);
    if (!res.headersSent) plain(res, 502, "Etherpad is not answering.");
    else res.destroy();
  });
  req.pipe(upstream);
}

// WebSocket upgrades (socket.io's transport): the same sign-in, then the bytes
// are relayed both ways untouched; Etherpad filters the messages by session.
function relayUpgrade(req, socket, head, role, options) {
  let path = "";
  try {
    path = new URL(req.url, "http://grain").pathname;
  } catch (err) {
    // Not a path: answered as any other one outside socket.io.
  }
  if (!path.startsWith("/socket.io/")) {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const upstream = net.connect(options.upstreamPort, options.host, () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (const [name, value] of Object.entries(upstreamHeaders(req, role, options))) {
      for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
    }
    upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head && head.length) upstream.write(head);
    socket.pipe(upstream).pipe(socket);
  });
  const close = () => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on("error", close);
  socket.on("error", close);
  upstream.on("close", close);
  socket.on("close", close);
}

/**
 * Starts the front server. options: {port, host, upstreamPort, pad, readOnlyPad,
 * passwords: {editor, viewer}, secret, nameAuthor: async (token, name)}. Returns the http.Server, with a
 * `shutdown()` that closes it and its connections.
 */
function serve(options) {
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const role = roleOf(req.headers);
    let url;
    try {
      url = new URL(req.url, "http://grain");
    } catch (err) {
      plain(res, 400, "Bad request path.");
      return;
    }
    const answer = route(req, url, role, options);
    if (answer === null) {
      relay(req, res, role, options, agent).catch((err) => {
        process.stderr.write(`front: ${err.stack || err}\n`);
        res.destroy();
      });
      return;
    }
    req.resume();
    if (answer.location) {
      res.writeHead(answer.status, { Location: answer.location, "Content-Length": 0 });
      res.end();
    } else {
      plain(res, answer.status, answer.text);
    }
  });
  server.on("upgrade", (req, socket, head) => {
    relayUpgrade(req, socket, head, roleOf(req.headers), options);
  });
  server.listen(options.port, options.host);
  // Stops listening and drops every connection, kept-alive ones included, so
  // that nothing of the front keeps the process alive once Etherpad has stopped.
  server.shutdown = () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
  };
  return server;
}

module.exports = { serve, requestCookies, responseCookie, route, roleOf };
