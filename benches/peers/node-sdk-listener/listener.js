'use strict';
// A Hybrid Connections listener written on the official Node SDKs, the way a user without hycod
// would write one: benches/compare.sh measures `hycod run` against it in the same role.
//
//   HYCO_RELAY=ws://127.0.0.1:PORT HYCO_KEY_NAME=root HYCO_KEY=... \
//     node listener.js [--ws HC=HOST:PORT]... [--http HC=http://HOST:PORT]...
//
// --ws    hyco-ws createRelayedServer on hybrid connection HC: every relayed stream gets its own
//         TCP connection to HOST:PORT; bytes are piped both ways with backpressure (a full
//         target socket pauses the rendezvous socket, a full rendezvous socket pauses the target).
// --http  hyco-https createRelayedServer on HC: every relayed request is proxied to the HTTP
//         target through one keep-alive agent; the request path loses its leading /HC.
//
// Prints `listening N hybrid connections` once every control channel is open; a control-channel
// error before that ends the process, a later close or error is logged and the SDK reconnects.
// The key comes from the environment only, never from the arguments (they are visible in `ps`).

const http = require('http');
const net = require('net');
const WebSocket = require('hyco-ws');
const https = require('hyco-https');

// Bytes queued towards the relay on one stream before the target socket is paused, and the
// level below which it is resumed.
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

function fail(message) {
  process.stderr.write(`node-sdk-listener: ${message}\n`);
  process.exit(1);
}

function env(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
}

function parseArgs(argv) {
  const out = { ws: [], http: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    const eq = value === undefined ? -1 : value.indexOf('=');
    if ((flag !== '--ws' && flag !== '--http') || eq <= 0) {
      fail(`usage: listener.js [--ws HC=HOST:PORT]... [--http HC=http://HOST:PORT]... (got ${flag} ${value})`);
    }
    const hc = value.slice(0, eq);
    const target = value.slice(eq + 1);
    if (flag === '--ws') {
      const colon = target.lastIndexOf(':');
      if (colon <= 0) fail(`--ws ${value}: the target must be HOST:PORT`);
      out.ws.push({ hc, host: target.slice(0, colon), port: Number(target.slice(colon + 1)) });
    } else {
      const url = new URL(target);
      if (url.protocol !== 'http:') fail(`--http ${value}: the target must be an http:// URL`);
      out.http.push({ hc, host: url.hostname, port: Number(url.port || 80) });
    }
  }
  if (out.ws.length + out.http.length === 0) fail('nothing to listen on: give --ws or --http');
  return out;
}

const relay = new URL(env('HYCO_RELAY').replace(/\/+$/, ''));
if (relay.protocol !== 'ws:') fail(`HYCO_RELAY must be a ws:// URL, got ${relay.protocol}`);
const keyName = env('HYCO_KEY_NAME');
const key = env('HYCO_KEY');
const args = parseArgs(process.argv.slice(2));

// The SDKs' URI helpers force wss and port 443, so the listen URI is built by hand; tokens are
// minted for http://HOST:PORT/HC, the resource a self-hosted relay checks.
const listenUri = (hc) => `${relay.origin}/$hc/${hc}?sb-hc-action=listen&sb-hc-id=node-sdk-listener`;
const audience = (hc) => `http://${relay.hostname}:${relay.port || 80}/${hc}`;

let pending = args.ws.length + args.http.length;
function online() {
  pending -= 1;
  if (pending === 0) {
    process.stdout.write(`listening ${args.ws.length + args.http.length} hybrid connections\n`);
  }
}

// A control channel the relay closes (e.g. its idle cut, 1001, on a hybrid connection that
// carried nothing for a while: hyco-ws and hyco-https send no pings) is reopened by the SDK
// itself, as it would be for a user; an error before the first open ends the process.
function watchControl(server, hc) {
  let opened = false;
  server.on('listening', () => {
    server.controlChannel.on('close', (code) => {
      process.stderr.write(`node-sdk-listener: ${hc}: control channel closed (code ${code}); the SDK reconnects\n`);
    });
    if (!opened) {
      opened = true;
      online();
    }
  });
  server.on('error', (error) => {
    if (!opened) fail(`${hc}: control channel error: ${error.message || error}`);
    process.stderr.write(`node-sdk-listener: ${hc}: control channel error: ${error.message || error}\n`);
  });
}

// One relayed stream piped to a fresh TCP connection to the target. A WebSocket has no
// half-close, so the target's FIN ends nothing: the stream ends when the relayed side closes
// (then the target gets a FIN after the queued bytes) or either side fails.
function pipeStream(ws, target) {
  const tcp = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
  tcp.setNoDelay(true);
  let closed = false;
  const shut = () => {
    if (closed) return;
    closed = true;
    tcp.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
  };
  // relay -> target: a full target socket pauses reading from the rendezvous socket.
  ws.on('message', (data) => {
    if (!tcp.write(data) && ws._socket) {
      ws._socket.pause();
      tcp.once('drain', () => ws._socket && ws._socket.resume());
    }
  });
  // target -> relay: more than HIGH_WATER queued towards the relay pauses the target socket.
  tcp.on('data', (chunk) => {
    if (ws.readyState !== ws.OPEN) {
      shut();
      return;
    }
    ws.send(chunk, { binary: true }, (error) => {
      if (error) shut();
      else if (tcp.isPaused() && ws.bufferedAmount < LOW_WATER) tcp.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) tcp.pause();
  });
  // Target data that arrives before the rendezvous socket opens waits in the TCP socket.
  if (ws.readyState !== ws.OPEN) {
    tcp.pause();
    ws.once('open', () => tcp.resume());
  }
  tcp.on('close', shut);
  tcp.on('error', shut);
  ws.on('close', () => tcp.end());
  ws.on('error', shut);
}

for (const target of args.ws) {
  const server = WebSocket.createRelayedServer(
    {
      server: listenUri(target.hc),
      token: () => WebSocket.createRelayToken(audience(target.hc), keyName, key),
    },
    (ws) => pipeStream(ws, target),
  );
  watchControl(server, target.hc);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host', 'te', 'trailer']);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

for (const target of args.http) {
  const prefix = `/${target.hc}`;
  const server = https.createRelayedServer(
    {
      server: listenUri(target.hc),
      token: () => https.createRelayToken(audience(target.hc), keyName, key),
    },
    (req, res) => {
      let path = req.url.startsWith(prefix) ? req.url.slice(prefix.length) : req.url;
      if (!path.startsWith('/')) path = `/${path}`;
      const headers = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (!HOP_BY_HOP.has(name)) headers[name] = value;
      }
      const upstream = http.request(
        { agent, host: target.host, port: target.port, method: req.method, path, headers },
        (answer) => {
          res.statusCode = answer.statusCode;
          for (const [name, value] of Object.entries(answer.headers)) {
            // hyco-https keeps headers set with setHeader only (writeHead's are dropped).
            if (!HOP_BY_HOP.has(name)) res.setHeader(name, value);
          }
          answer.pipe(res);
        },
      );
      upstream.on('error', (error) => {
        res.statusCode = 502;
        res.end(`upstream error: ${error.message}`);
      });
      req.pipe(upstream);
    },
  );
  watchControl(server, target.hc);
  // hyco-https connects only once listen() is called.
  server.listen();
}
