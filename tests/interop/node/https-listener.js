'use strict';
// Verifiable HTTP listener on the official hyco-https SDK (createRelayedServer + listen(),
// protocol §10.2, §10.5). Serve it on a hybrid connection that gets no WebSocket senders: an
// `accept` crashes hyco-https (protocol §10.4 #9).
//
// Usage: node https-listener.js          (configuration from the environment, see common.js)
//
// Output: {"event":"listening"} once the control channel is open (hyco-https emits
// 'listening' from the control WebSocket's onopen), then {"event":"request",...} per request.
//
// Request handling (no JSON in the HTTP exchange, everything is checkable from headers/body):
//   status   = request header x-want-status (default 200)
//   body     = the request body (echo), or, if the request has x-want-len: N,
//              common.content(`response/${N}`, N)
//   headers  x-method       = req.method
//            x-url          = req.url (the relay's requestTarget, protocol §4.4)
//            x-body-sha256  = SHA-256 (hex) of the request body the listener received
//            x-body-len     = its length
//            x-multi        = the request's x-multi header (present only if it was sent)

const https = require('hyco-https');
const common = require('./common');

const cfg = common.config();
let phase = 'connecting the control channel';
common.exitWhenParentGoes();

function respond(req, res, body) {
  const wantStatus = req.headers['x-want-status'];
  const status = wantStatus === undefined ? 200 : Number(wantStatus);
  let out = body;
  if (req.headers['x-want-len'] !== undefined) {
    const len = Number(req.headers['x-want-len']);
    out = common.content(`response/${len}`, len);
  }
  res.statusCode = status;
  // setHeader only: headers passed to writeHead() are dropped by hyco-https when no
  // setHeader() call preceded it.
  res.setHeader('x-method', req.method);
  res.setHeader('x-url', req.url);
  res.setHeader('x-body-sha256', common.sha256(body));
  res.setHeader('x-body-len', String(body.length));
  if (req.headers['x-multi'] !== undefined) {
    res.setHeader('x-multi', req.headers['x-multi']);
  }
  common.emit({
    event: 'request',
    method: req.method,
    url: common.redactToken(req.url),
    status,
    len: body.length,
    out_len: out.length,
  });
  // res.end(emptyBuffer) would send nothing at all in hyco-https 1.4.5 (the empty chunk is
  // dropped before the response preamble is written), so an empty body must use end().
  if (out.length === 0) {
    res.end();
  } else {
    res.end(out);
  }
}

const server = https.createRelayedServer(
  {
    server: common.listenUri(cfg, 'node-https-listener'),
    token: () => https.createRelayToken(common.tokenAudience(cfg), cfg.keyName, cfg.key),
  },
  (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(Buffer.from(chunk)));
    req.on('end', () => {
      try {
        respond(req, res, Buffer.concat(chunks));
      } catch (error) {
        common.fail(`handler failed for ${req.method} ${common.redactToken(req.url)}: ${error.message}`);
      }
    });
  },
);

server.on('listening', () => {
  phase = 'serving';
  common.emit({ event: 'listening' });
  server.controlChannel.on('close', (code) => {
    common.fail(`control channel closed by the relay (code ${code}) while ${phase}`);
  });
});

// hyco-https emits 'error' only when a listener is attached; any control-channel error is a
// test failure (and would otherwise start the 0/1/2/5/10/30 s reconnect schedule).
server.on('error', (error) => {
  common.fail(`control channel error while ${phase}: ${String(error.message || error)}`);
});

// hyco-https does not connect until listen() is called (protocol §10.2); its arguments are ignored.
server.listen();
