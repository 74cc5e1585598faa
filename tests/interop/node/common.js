'use strict';
// Shared helpers for the interop scripts: configuration from the environment, the URLs and
// tokens of protocol §10.5, deterministic test content, and the one-JSON-object-per-line output
// contract the Rust harness (tests/interop/harness.rs) parses.
//
// Environment (all scripts):
//   HYCO_RELAY        relay base URL, e.g. ws://127.0.0.1:41234 (plain ws, loopback)
//   HYCO_HC           hybrid connection name, e.g. hyco-ws
//   HYCO_KEY_NAME     SAS rule name, e.g. RootManageSharedAccessKey
//   HYCO_KEY          SAS key (the base64 text itself is the HMAC key, protocol §3.3)
//   HYCO_TIMEOUT_MS   optional overall deadline of the script (default 90000)

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const SCRIPT = path.basename(process.argv[1] || 'interop');

/** Writes one result object as one line of JSON on stdout (synchronous for pipes on Linux). */
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Reports a failure on stderr and exits non-zero. Never prints keys or tokens. */
function fail(message) {
  process.stderr.write(`${SCRIPT}: FAILED: ${message}\n`);
  process.exit(1);
}

/** Reads a required environment variable or fails naming it. */
function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    fail(`environment variable ${name} is not set`);
  }
  return value;
}

/** Reads the common configuration; see the header comment for the variables. */
function config() {
  const relay = requireEnv('HYCO_RELAY').replace(/\/+$/, '');
  const parsed = new URL(relay);
  if (parsed.protocol !== 'ws:') {
    fail(`HYCO_RELAY must be a ws:// URL, got ${relay}`);
  }
  return {
    relay,
    host: parsed.hostname,
    port: Number(parsed.port || 80),
    hc: requireEnv('HYCO_HC'),
    keyName: requireEnv('HYCO_KEY_NAME'),
    key: requireEnv('HYCO_KEY'),
  };
}

/**
 * Arms the script's overall deadline. The timer is unref'd so it never keeps a finished
 * script alive; when it fires the script fails with `what` in the message.
 */
function armDeadline(what) {
  const ms = Number(process.env.HYCO_TIMEOUT_MS || 90000);
  setTimeout(() => fail(`timed out after ${ms} ms while ${what()}`), ms).unref();
}

/**
 * Exits when stdin reaches end-of-file if stdin is a pipe: the Rust harness holds the write
 * end, so a crashed or killed test process never leaves a listener running (and reconnecting).
 */
function exitWhenParentGoes() {
  let isPipe = false;
  try {
    isPipe = fs.fstatSync(0).isFIFO();
  } catch (e) {
    isPipe = false;
  }
  if (isPipe) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
}

/**
 * Listener control-channel URL, built by hand because the SDK helpers force wss/443
 * (protocol §10.4 #2).
 */
function listenUri(cfg, id) {
  return `${cfg.relay}/$hc/${cfg.hc}?sb-hc-action=listen&sb-hc-id=${encodeURIComponent(id)}`;
}

/** Sender WebSocket URL (protocol §7.1). */
function connectUri(cfg, id) {
  return `${cfg.relay}/$hc/${cfg.hc}?sb-hc-action=connect&sb-hc-id=${encodeURIComponent(id)}`;
}

/** Resource URI the tokens are minted for: http://HOST:PORT/HC, as in protocol §10.5's recipe. */
function tokenAudience(cfg) {
  return `http://${cfg.host}:${cfg.port}/${cfg.hc}`;
}

/** Lower-case hex SHA-256 of a Buffer or string (strings are hashed as UTF-8). */
function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * Deterministic test content: SHA-256 in counter mode, block i = SHA-256(`${label}/${i}`),
 * concatenated and cut to `size` bytes. tests/interop/content.rs implements the same
 * function so the Rust side can check every hash the scripts report.
 */
function content(label, size) {
  const out = Buffer.alloc(size);
  for (let offset = 0, i = 0; offset < size; i += 1) {
    const block = crypto.createHash('sha256').update(`${label}/${i}`).digest();
    offset += block.copy(out, offset, 0, Math.min(block.length, size - offset));
  }
  return out;
}

/** Deterministic text content: lower-case hex of content(label, size / 2); `size` must be even. */
function textContent(label, size) {
  return content(label, size / 2).toString('hex');
}

/** Replaces the value of every sb-hc-token query parameter in `url` by <token>, for output. */
function redactToken(url) {
  return String(url).replace(/(sb-hc-token=)[^&"]*/gi, '$1<token>');
}

/** Extracts the HTTP status from an SDK error message, e.g. "unexpected server response (401)". */
function statusFromError(error) {
  const text = String((error && error.message) || error);
  const match = /response[^0-9]*([1-5][0-9][0-9])/i.exec(text);
  return match ? Number(match[1]) : null;
}

module.exports = {
  armDeadline,
  config,
  connectUri,
  content,
  emit,
  exitWhenParentGoes,
  fail,
  listenUri,
  redactToken,
  requireEnv,
  sha256,
  statusFromError,
  textContent,
  tokenAudience,
};
