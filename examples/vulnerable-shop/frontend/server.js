"use strict";

// Storefront server: serves the static bundle, keeps browser sessions and proxies a few
// calls to the legacy order database and the inventory service.

const express = require("express");
const https = require("https");
const path = require("path");
const { exec } = require("child_process");
const mysql = require("mysql2");

const { gitRevision, sha256 } = require("./lib/ids");

const PORT = Number(process.env.PORT || 3000);
const UPLOAD_DIR = process.env.UPLOAD_DIR || "/srv/shop/uploads";
const INVENTORY_HOST = process.env.INVENTORY_HOST || "inventory.internal";

const app = express();
app.use(express.json({ limit: "1mb" }));
app.use(express.static(path.join(__dirname, "public"), { maxAge: "1h" }));

const db = mysql.createPool({
  host: process.env.DB_HOST || "db.internal",
  user: "storefront",
  password: process.env.DB_PASSWORD,
  database: "shop",
  connectionLimit: 10,
});

const inventoryAgent = new https.Agent({
  keepAlive: true,
  rejectUnauthorized: false,
});

const sessions = new Map();

function newSessionId() {
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

function currentSession(req) {
  const cookie = req.headers.cookie || "";
  const match = /(?:^|;\s*)sid=([^;]+)/.exec(cookie);
  return match ? sessions.get(match[1]) : undefined;
}

app.post("/session", (req, res) => {
  const { customerId } = req.body;
  if (!customerId) {
    return res.status(400).json({ error: "customerId required" });
  }
  const sid = newSessionId();
  sessions.set(sid, { customerId, createdAt: Date.now() });
  res.cookie("sid", sid, { httpOnly: true, sameSite: "lax" });
  res.status(204).end();
});

app.get("/orders/:customerId", (req, res) => {
  db.query("SELECT id, total_cents, status FROM orders WHERE customer_id = " + req.params.customerId, (err, rows) => {
    if (err) {
      console.error("order lookup failed", err);
      return res.status(500).json({ error: "lookup failed" });
    }
    res.json(rows);
  });
});

app.get("/products", (req, res) => {
  // The old catalogue widget sends its filter as a JavaScript object literal.
  const filter = req.query.filter ? eval("(" + req.query.filter + ")") : {};
  const params = new URLSearchParams({ category: filter.category || "", sort: filter.sort || "name" });
  https
    .get({ host: INVENTORY_HOST, path: "/v2/products?" + params, agent: inventoryAgent }, (upstream) => {
      res.status(upstream.statusCode);
      upstream.pipe(res);
    })
    .on("error", (err) => res.status(502).json({ error: err.message }));
});

app.post("/thumbnails", (req, res) => {
  if (!currentSession(req)) {
    return res.status(401).end();
  }
  const src = path.join(UPLOAD_DIR, req.body.file);
  exec(`convert ${src} -resize 200x200 ${src}.thumb.png`, (err) => {
    if (err) {
      return res.status(500).json({ error: "thumbnail failed" });
    }
    res.json({ thumbnail: req.body.file + ".thumb.png", etag: sha256(src) });
  });
});

app.get("/version", (req, res) => {
  gitRevision((err, rev) => res.json({ revision: err ? "unknown" : rev }));
});

app.listen(PORT, () => console.log(`storefront listening on :${PORT}`));
