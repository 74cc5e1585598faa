'use strict';
// The official SDKs against `hycod relay --self-signed NAME` as they would run against Azure
// (docs/emulator.md): every URL comes from the SDKs' own helpers, which hard-code
// wss://NAMESPACE:443 (hyco-ws/index.js createRelayListenUri, createRelaySendUri;
// hyco-https/index.js the same and https://NAMESPACE/PATH), so the only changes a machine needs
// are a hosts entry for NAMESPACE and NODE_EXTRA_CA_CERTS naming the relay's CA. Senders bring
// no token: the hybrid connections they use have requires_client_authorization = false.
//
// Usage:
//   node emulator.js ws-listener      hyco-ws createRelayedServer echo listener on HYCO_WS_HC
//   node emulator.js https-listener   hyco-https createRelayedServer on HYCO_HTTP_HC: answers
//                                     200 with "hello <method> <url>" and x-authorization set
//                                     to the request's Authorization header
//   node emulator.js senders          one hyco-ws relayedConnect echo (no token) on HYCO_WS_HC,
//                                     then one https.request (no token, Authorization:
//                                     "Bearer app") to https://NAMESPACE/HYCO_HTTP_HC/hello?x=1
//
// Environment: HYCO_NAMESPACE (the relay's NAME), HYCO_WS_HC, HYCO_HTTP_HC, and for listeners
// HYCO_KEY_NAME/HYCO_KEY (a rule with Listen); optionally HYCO_TIMEOUT_MS.
//
// Output, one JSON object per line:
//   {"event":"listening"}                                   a listener's control channel is open
//   {"event":"stream","len":N,"sha256":H}                   ws-listener: a message echoed
//   {"event":"request","method":M,"url":U}                  https-listener: a request answered
//   {"event":"ws-echo","len":N,"sha256":H,"echo_sha256":H}  senders: the echo came back
//   {"event":"http","status":S,"body":B,"x_authorization":A,"via":V}
//                                                           senders: the HTTP answer

const common = require('./common');

const role = process.argv[2];
const namespace = common.requireEnv('HYCO_NAMESPACE');
const wsHc = common.requireEnv('HYCO_WS_HC');
const httpHc = common.requireEnv('HYCO_HTTP_HC');
let phase = `starting ${role}`;
common.exitWhenParentGoes();

/** The listen token, minted by the SDK for the URI it listens on, as its samples do. */
function listenToken(sdk, uri) {
  const keyName = common.requireEnv('HYCO_KEY_NAME');
  const key = common.requireEnv('HYCO_KEY');
  return () => sdk.createRelayToken(uri, keyName, key);
}

function wsListener() {
  const WebSocket = require('hyco-ws');
  const uri = WebSocket.createRelayListenUri(namespace, wsHc);
  phase = `connecting ${uri}`;
  const server = WebSocket.createRelayedServer(
    { server: uri, token: listenToken(WebSocket, uri) },
    (ws) => {
      ws.on('message', (data, flags) => {
        const binary = Boolean(flags && flags.binary);
        common.emit({ event: 'stream', len: data.length, sha256: common.sha256(data) });
        ws.send(data, { binary });
      });
      ws.on('error', (error) => common.fail(`stream error: ${error.message || error}`));
    },
  );
  server.on('listening', () => {
    phase = 'serving streams';
    common.emit({ event: 'listening' });
  });
  // hyco-ws emits 'error' without checking for listeners and would reconnect forever.
  server.on('error', (error) => common.fail(`control channel error while ${phase}: ${error.message || error}`));
}

function httpsListener() {
  const https = require('hyco-https');
  const uri = https.createRelayListenUri(namespace, httpHc);
  phase = `connecting ${uri}`;
  const server = https.createRelayedServer(
    { server: uri, token: listenToken(https, uri) },
    (req, res) => {
      common.emit({ event: 'request', method: req.method, url: req.url });
      res.setHeader('x-authorization', req.headers.authorization || '');
      res.end(`hello ${req.method} ${req.url}`);
    },
  );
  // listen() opens the control channel (it takes no callback, hyco-https 1.4.5).
  server.listen();
  server.on('listening', () => {
    phase = 'serving requests';
    common.emit({ event: 'listening' });
  });
  server.on('error', (error) => common.fail(`control channel error while ${phase}: ${error.message || error}`));
}

function senders() {
  common.armDeadline(() => phase);
  const WebSocket = require('hyco-ws');
  const uri = WebSocket.createRelaySendUri(namespace, wsHc);
  const message = common.content('emulator/ws', 4096);
  phase = `connecting ${uri} without a token`;
  // No token: relayedConnect then sends no ServiceBusAuthorization header (hyco-ws/index.js).
  const client = WebSocket.relayedConnect(uri, undefined, (ws) => {
    phase = 'waiting for the echo';
    ws.send(message, { binary: true });
    ws.on('message', (data) => {
      common.emit({
        event: 'ws-echo',
        len: data.length,
        sha256: common.sha256(message),
        echo_sha256: common.sha256(data),
      });
      ws.close(1000);
      httpRequest();
    });
  });
  client.on('error', (error) => common.fail(`sender WebSocket error while ${phase}: ${error.message || error}`));
}

function httpRequest() {
  const https = require('https');
  phase = `requesting https://${namespace}/${httpHc}/hello?x=1 without a token`;
  const req = https.request(
    {
      hostname: namespace,
      port: 443,
      path: `/${httpHc}/hello?x=1`,
      method: 'GET',
      headers: { Authorization: 'Bearer app' },
    },
    (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        common.emit({
          event: 'http',
          status: res.statusCode,
          body: Buffer.concat(chunks).toString('utf8'),
          x_authorization: res.headers['x-authorization'] || null,
          via: res.headers.via || null,
        });
        process.exit(0);
      });
    },
  );
  req.on('error', (error) => common.fail(`HTTPS request failed while ${phase}: ${error.message || error}`));
  req.end();
}

const roles = { 'ws-listener': wsListener, 'https-listener': httpsListener, senders };
if (!roles[role]) {
  common.fail(`unknown role ${role}; use ws-listener, https-listener or senders`);
}
roles[role]();
