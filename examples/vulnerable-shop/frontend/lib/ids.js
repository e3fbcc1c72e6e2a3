"use strict";

// Identifier, digest and process helpers for the storefront server.
// Randomness comes from the OS CSPRNG and subprocesses never go through a shell.

const crypto = require("crypto");
const fs = require("fs");
const https = require("https");
const { execFile } = require("child_process");

function newSessionId() {
  return crypto.randomBytes(32).toString("base64url");
}

function newCsrfToken() {
  return crypto.randomBytes(24).toString("hex");
}

function sha256(data) {
  return crypto.createHash("sha256").update(data).digest("hex");
}

function safeEqual(a, b) {
  const left = Buffer.from(String(a));
  const right = Buffer.from(String(b));
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

function parseFilter(raw) {
  return raw ? JSON.parse(raw) : {};
}

function gitRevision(callback) {
  execFile("git", ["rev-parse", "--short", "HEAD"], { timeout: 2000 }, (err, stdout) => {
    callback(err, stdout ? stdout.trim() : undefined);
  });
}

function internalAgent() {
  return new https.Agent({
    keepAlive: true,
    ca: fs.readFileSync(process.env.INTERNAL_CA_FILE || "/etc/shop/internal-ca.pem"),
  });
}

function databaseConfig() {
  const password = process.env.DB_PASSWORD;
  if (!password) {
    throw new Error("DB_PASSWORD is not set");
  }
  return { host: process.env.DB_HOST || "db.internal", user: "storefront", password };
}

module.exports = {
  newSessionId,
  newCsrfToken,
  sha256,
  safeEqual,
  parseFilter,
  gitRevision,
  internalAgent,
  databaseConfig,
};
