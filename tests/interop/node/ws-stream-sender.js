'use strict';
// Byte-stream senders on the official hyco-ws SDK (relayedConnect, protocol §7.1, §10.2) against a
// listener that forwards the stream to a TCP echo target, such as the hycod daemon in stream
// mode (protocol §5.4). TCP does not keep WebSocket message boundaries, so the echo is checked as
// a byte stream: each sender sends its messages back to back, reads until as many bytes came
// back as it sent, compares the SHA-256 of both concatenations, then closes with 1000.
//
// Usage (configuration from the environment, see common.js):
//   node ws-stream-sender.js [--senders 1] [--sizes 0,1,125,...]
//       N senders at once; each sends one binary message per size
//
// Output, one JSON object per line:
//   {"event":"stream","sender":I,"messages":K,"len":N,"sha256":H,
//    "echo_len":N,"echo_sha256":H,"echo_messages":M,"ok":true|false}
//   {"event":"closed","sender":I,"initiator":"sender","code":C}
//   {"event":"summary","senders":S,"bytes":B,"verified":V,"clean_closes":C}
// Message k of sender i is common.content(`stream/s${i}/m${k}`, size k), so the Rust side can
// recompute every hash. `echo_messages` is how many WebSocket messages the echo arrived in
// (informational: the listener may split or merge). Exit status is non-zero if any stream did
// not verify or did not close with 1000.

const util = require('util');
const WebSocket = require('hyco-ws');
const common = require('./common');

// Mixed sizes around the WebSocket length-encoding edges (125/126, 65535/65536), empty
// messages, and large ones: 3,639,204 bytes in all.
const DEFAULT_SIZES = [0, 1, 125, 126, 65535, 65536, 1048576, 0, 7, 1048575, 262144, 1048576, 100000, 3];

const pending = new Map();
let phase = 'starting';
common.armDeadline(() => {
  const waiting = [...pending.values()].join('; ');
  return waiting === '' ? phase : `${phase}: ${waiting}`;
});

/** Connects sender `index` and resolves with the socket once the relay answered 101. */
function open(cfg, token, index) {
  return new Promise((resolve, reject) => {
    const ws = WebSocket.relayedConnect(common.connectUri(cfg, `node-stream-sender-${index}`), token);
    let opened = false;
    ws.on('open', () => {
      opened = true;
      resolve(ws);
    });
    ws.on('error', (error) => {
      const text = String((error && error.message) || error);
      if (!opened) {
        reject(new Error(`sender ${index}: connect failed: ${text}`));
      } else {
        common.fail(`sender ${index}: stream error: ${text}`);
      }
    });
  });
}

/**
 * Sends the messages of sender `index`, collects the echo until it is as long as what was sent,
 * then closes with 1000. Resolves with { ok, clean }.
 */
async function runSender(cfg, token, index, sizes) {
  pending.set(index, `sender ${index} connecting`);
  const ws = await open(cfg, token, index);
  const messages = sizes.map((len, k) => common.content(`stream/s${index}/m${k}`, len));
  const sent = Buffer.concat(messages);

  const received = [];
  let receivedLen = 0;
  let echoMessages = 0;
  const echoed = new Promise((resolve, reject) => {
    const settleIfDone = () => {
      if (receivedLen >= sent.length) {
        resolve();
      }
    };
    ws.on('message', (data, flags) => {
      if (!(flags && flags.binary)) {
        reject(new Error(`sender ${index}: a text message came back (${String(data).length} chars)`));
        return;
      }
      const chunk = Buffer.from(data);
      received.push(chunk);
      receivedLen += chunk.length;
      echoMessages += 1;
      pending.set(index, `sender ${index} has ${receivedLen} of ${sent.length} echoed bytes`);
      settleIfDone();
    });
    ws.on('close', (code) => {
      reject(new Error(`sender ${index}: stream closed with ${code} after ${receivedLen} `
        + `of ${sent.length} echoed bytes`));
    });
    settleIfDone();
  });
  const closed = new Promise((resolve) => ws.on('close', resolve));

  pending.set(index, `sender ${index} sending ${sent.length} bytes`);
  for (const message of messages) {
    ws.send(message, { binary: true }, (error) => {
      if (error) {
        common.fail(`sender ${index}: send failed: ${error.message}`);
      }
    });
  }
  await echoed;
  const echo = Buffer.concat(received);
  const result = {
    event: 'stream',
    sender: index,
    messages: messages.length,
    len: sent.length,
    sha256: common.sha256(sent),
    echo_len: echo.length,
    echo_sha256: common.sha256(echo),
    echo_messages: echoMessages,
  };
  result.ok = result.echo_len === result.len && result.echo_sha256 === result.sha256;
  common.emit(result);

  pending.set(index, `sender ${index} waiting for its close handshake`);
  ws.close(1000, 'sender done');
  const code = await closed;
  common.emit({ event: 'closed', sender: index, initiator: 'sender', code });
  pending.delete(index);
  return { ok: result.ok, clean: code === 1000, bytes: sent.length };
}

function parseSizes(text) {
  if (text === undefined) {
    return DEFAULT_SIZES;
  }
  return text.split(',').filter((s) => s !== '').map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 0) {
      common.fail(`not a size: ${s}`);
    }
    return n;
  });
}

async function main() {
  const { values } = util.parseArgs({
    options: {
      senders: { type: 'string' },
      sizes: { type: 'string' },
    },
  });
  const count = Number(values.senders || 1);
  if (!Number.isSafeInteger(count) || count < 1) {
    common.fail(`not a sender count: ${values.senders}`);
  }
  const sizes = parseSizes(values.sizes);
  const cfg = common.config();
  const token = WebSocket.createRelayToken(common.tokenAudience(cfg), cfg.keyName, cfg.key);
  phase = `running ${count} stream sender(s)`;
  const indexes = Array.from({ length: count }, (_, i) => i);
  const results = await Promise.all(indexes.map((i) => runSender(cfg, token, i, sizes)));
  const summary = {
    event: 'summary',
    senders: count,
    bytes: results.reduce((sum, r) => sum + r.bytes, 0),
    verified: results.filter((r) => r.ok).length,
    clean_closes: results.filter((r) => r.clean).length,
  };
  common.emit(summary);
  if (summary.verified !== count || summary.clean_closes !== count) {
    common.fail(`${summary.verified}/${count} streams verified, `
      + `${summary.clean_closes}/${count} clean closes`);
  }
  process.exit(0);
}

main().catch((error) => common.fail(`${String((error && error.message) || error)} (while ${phase})`));
