'use strict';
// WebSocket senders on the official hyco-ws SDK (relayedConnect, protocol §7.1, §10.2) against an
// echo listener (ws-listener.js) on the same hybrid connection.
//
// Usage (configuration from the environment, see common.js):
//   node ws-sender.js sizes      [--sizes 0,1,125,...] [--text-sizes 0,1024]
//       one sender, one message per size, each echo checked byte-exact, then a clean close
//   node ws-sender.js concurrent [--senders 64] [--sizes 100,1000,10000,100000]
//       N senders at once, each sends one message per size and checks the echoes, then closes
//   node ws-sender.js close
//       stream 0: the sender closes with 1000; stream 1: the listener closes (CLOSE_COMMAND)
//
// Output, one JSON object per line:
//   {"event":"echo","sender":I,"label":L,"type":"binary"|"text","len":N,"sha256":H,
//    "echo_type":...,"echo_len":...,"echo_sha256":...,"ok":true|false}
//   {"event":"closed","sender":I,"initiator":"sender"|"listener","code":C}
//   {"event":"summary","mode":M,"senders":S,"messages":K,"verified":V,"clean_closes":C}
// Message content is common.content(label, len) (text: common.textContent), so the Rust side
// can recompute every hash. Exit status is non-zero if anything did not verify.

const util = require('util');
const WebSocket = require('hyco-ws');
const common = require('./common');

const CLOSE_COMMAND = 'hycod-interop:close';
const DEFAULT_SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024, 4 * 1024 * 1024];
const DEFAULT_TEXT_SIZES = [0, 1024];
const DEFAULT_CONCURRENT_SIZES = [100, 1000, 10000, 100000];

let phase = 'starting';
common.armDeadline(() => phase);

/** One relayed WebSocket with a promise-based inbox, so tests read like a script. */
class SenderSocket {
  constructor(ws, index) {
    this.ws = ws;
    this.index = index;
    this.inbox = [];
    this.waiters = [];
    this.closeCode = null;
    this.closeWaiters = [];
    ws.on('message', (data, flags) => {
      const message = { data, binary: Boolean(flags && flags.binary) };
      const waiter = this.waiters.shift();
      if (waiter) {
        waiter.resolve(message);
      } else {
        this.inbox.push(message);
      }
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.waiters.splice(0).forEach((w) => w.reject(new Error(`stream closed with ${code}`)));
      this.closeWaiters.splice(0).forEach((resolve) => resolve(code));
    });
  }

  /** Connects sender `index` and resolves once the relay answered 101. */
  static open(cfg, token, index) {
    return new Promise((resolve, reject) => {
      const ws = WebSocket.relayedConnect(common.connectUri(cfg, `node-sender-${index}`), token);
      let opened = false;
      ws.on('open', () => {
        opened = true;
        resolve(new SenderSocket(ws, index));
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

  send(data, binary) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, { binary }, (error) => (error ? reject(error) : resolve()));
    });
  }

  nextMessage() {
    if (this.inbox.length > 0) {
      return Promise.resolve(this.inbox.shift());
    }
    if (this.closeCode !== null) {
      return Promise.reject(new Error(`stream already closed with ${this.closeCode}`));
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  closed() {
    if (this.closeCode !== null) {
      return Promise.resolve(this.closeCode);
    }
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Sends one message and checks that the echo is byte-exact and of the same type. */
  async echo(label, type, len) {
    const payload = type === 'binary' ? common.content(label, len) : common.textContent(label, len);
    phase = `waiting for the echo of ${label} (${len} B ${type})`;
    await this.send(payload, type === 'binary');
    const reply = await this.nextMessage();
    const echoed = reply.binary ? Buffer.from(reply.data) : Buffer.from(reply.data, 'utf8');
    const result = {
      event: 'echo',
      sender: this.index,
      label,
      type,
      len,
      sha256: common.sha256(payload),
      echo_type: reply.binary ? 'binary' : 'text',
      echo_len: echoed.length,
      echo_sha256: common.sha256(echoed),
    };
    result.ok = result.echo_type === type && result.echo_len === len
      && result.echo_sha256 === result.sha256;
    common.emit(result);
    return result.ok;
  }

  /** Closes with 1000 and waits for the close handshake to finish. */
  async closeCleanly() {
    phase = `waiting for the close of sender ${this.index}`;
    this.ws.close(1000, 'sender done');
    const code = await this.closed();
    common.emit({ event: 'closed', sender: this.index, initiator: 'sender', code });
    return code === 1000;
  }
}

function parseSizes(text, fallback) {
  if (text === undefined) {
    return fallback;
  }
  return text.split(',').filter((s) => s !== '').map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 0) {
      common.fail(`not a size: ${s}`);
    }
    return n;
  });
}

async function runSizes(cfg, token, options) {
  const sizes = parseSizes(options.sizes, DEFAULT_SIZES);
  const textSizes = parseSizes(options['text-sizes'], DEFAULT_TEXT_SIZES);
  phase = 'connecting sender 0';
  const sender = await SenderSocket.open(cfg, token, 0);
  let verified = 0;
  for (const len of sizes) {
    verified += (await sender.echo(`ws/sizes/${len}`, 'binary', len)) ? 1 : 0;
  }
  for (const len of textSizes) {
    verified += (await sender.echo(`ws-text/sizes/${len}`, 'text', len)) ? 1 : 0;
  }
  const clean = await sender.closeCleanly();
  return { senders: 1, messages: sizes.length + textSizes.length, verified, clean_closes: clean ? 1 : 0 };
}

async function runConcurrent(cfg, token, options) {
  const count = Number(options.senders || 64);
  const sizes = parseSizes(options.sizes, DEFAULT_CONCURRENT_SIZES);
  phase = `connecting ${count} senders`;
  const indexes = Array.from({ length: count }, (_, i) => i);
  const senders = await Promise.all(indexes.map((i) => SenderSocket.open(cfg, token, i)));
  const perSender = await Promise.all(senders.map(async (sender) => {
    let verified = 0;
    for (const len of sizes) {
      verified += (await sender.echo(`ws/concurrent/s${sender.index}/${len}`, 'binary', len)) ? 1 : 0;
    }
    const clean = await sender.closeCleanly();
    return { verified, clean };
  }));
  return {
    senders: count,
    messages: count * sizes.length,
    verified: perSender.reduce((sum, r) => sum + r.verified, 0),
    clean_closes: perSender.filter((r) => r.clean).length,
  };
}

async function runClose(cfg, token) {
  phase = 'connecting sender 0';
  const first = await SenderSocket.open(cfg, token, 0);
  let verified = (await first.echo('ws/close/0', 'binary', 16)) ? 1 : 0;
  const firstClean = await first.closeCleanly();

  phase = 'connecting sender 1';
  const second = await SenderSocket.open(cfg, token, 1);
  verified += (await second.echo('ws/close/1', 'binary', 16)) ? 1 : 0;
  phase = 'waiting for the listener-initiated close of sender 1';
  await second.send(CLOSE_COMMAND, false);
  const code = await second.closed();
  common.emit({ event: 'closed', sender: 1, initiator: 'listener', code });
  const clean = (firstClean ? 1 : 0) + (code === 1000 ? 1 : 0);
  return { senders: 2, messages: 2, verified, clean_closes: clean };
}

async function main() {
  const { positionals, values } = util.parseArgs({
    allowPositionals: true,
    options: {
      sizes: { type: 'string' },
      'text-sizes': { type: 'string' },
      senders: { type: 'string' },
    },
  });
  const mode = positionals[0];
  const cfg = common.config();
  const token = WebSocket.createRelayToken(common.tokenAudience(cfg), cfg.keyName, cfg.key);
  let summary;
  if (mode === 'sizes') {
    summary = await runSizes(cfg, token, values);
  } else if (mode === 'concurrent') {
    summary = await runConcurrent(cfg, token, values);
  } else if (mode === 'close') {
    summary = await runClose(cfg, token);
  } else {
    common.fail(`unknown mode ${JSON.stringify(mode)} (expected sizes, concurrent or close)`);
  }
  common.emit({ event: 'summary', mode, ...summary });
  if (summary.verified !== summary.messages || summary.clean_closes !== summary.senders) {
    common.fail(`${summary.verified}/${summary.messages} echoes verified, `
      + `${summary.clean_closes}/${summary.senders} clean closes`);
  }
  process.exit(0);
}

main().catch((error) => common.fail(`${String((error && error.message) || error)} (while ${phase})`));
