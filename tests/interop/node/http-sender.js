'use strict';
// Relayed-HTTP sender with plain Node `http.request` (there is no SDK for HTTP senders, protocol
// §10.3) against https-listener.js, token from the SDK's createRelayToken in the
// ServiceBusAuthorization header (protocol §3.1, §7.2).
//
// Usage (configuration from the environment, see common.js):
//   node http-sender.js bodies        GET (response body) and POST (echo) for 0 B, 1 KiB,
//                                     100 KiB and 5 MiB
//   node http-sender.js multi-header  x-multi sent twice, expected back as "a, b" (protocol §4.4)
//   node http-sender.js query         query strings preserved, sb-hc-* parameters stripped,
//                                     token accepted in sb-hc-token (protocol §2.4, §3.1)
//   node http-sender.js statuses      404, 418, 500, 503 chosen by the listener
//
// Requests are sent one after another over one keep-alive connection, as Node's default agent
// would. Output, one JSON object per line:
//   {"event":"response","scenario":S,"method":M,"path":P,"status":C,"status_message":R,
//    "req_len":N,"req_sha256":H,"resp_len":N,"resp_sha256":H,"x_method":..,"x_url":..,
//    "x_body_len":..,"x_body_sha256":..,"x_multi":..,"via":..,"ok":bool,"problems":[...]}
//   {"event":"summary","scenario":S,"requests":N,"ok":K}
// Request bodies are common.content(`request/${len}`, len); generated response bodies are
// common.content(`response/${len}`, len). Exit status is non-zero if any check failed.

const http = require('http');
const WebSocket = require('hyco-ws');
const common = require('./common');

const BODY_SIZES = [0, 1024, 100 * 1024, 5 * 1024 * 1024];
const STATUSES = [
  [404, 'Not Found'],
  [418, 'I\'m a teapot'],
  [500, 'Internal Server Error'],
  [503, 'Service Unavailable'],
];

let phase = 'starting';
common.armDeadline(() => phase);

const cfg = common.config();
const token = WebSocket.createRelayToken(common.tokenAudience(cfg), cfg.keyName, cfg.key);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** A request of the scenario plus what the listener must answer. */
function plan(scenario) {
  const hc = cfg.hc;
  const base = `/${hc}/path?x=1&y=2`;
  if (scenario === 'bodies') {
    const requests = [];
    for (const len of BODY_SIZES) {
      requests.push({
        method: 'GET', path: base, headers: { 'x-want-len': String(len) },
        body: null, expect: { status: 200, xUrl: base, resp: common.content(`response/${len}`, len) },
      });
      const body = common.content(`request/${len}`, len);
      requests.push({
        method: 'POST', path: base, headers: { 'content-type': 'application/octet-stream' },
        body, expect: { status: 200, xUrl: base, resp: body },
      });
    }
    return requests;
  }
  if (scenario === 'multi-header') {
    return [{
      method: 'GET', path: base, headers: { 'x-multi': ['a', 'b'] },
      body: null, expect: { status: 200, xUrl: base, resp: Buffer.alloc(0), xMulti: 'a, b' },
    }];
  }
  if (scenario === 'query') {
    const cases = [
      [base, base],
      [`/${hc}`, `/${hc}`],
      [`/${hc}/a/b/c?x=1&x=2&empty=&enc=%2F%3A%3D%26`, `/${hc}/a/b/c?x=1&x=2&empty=&enc=%2F%3A%3D%26`],
      [`/${hc}/path?x=1&sb-hc-id=abc&y=2`, `/${hc}/path?x=1&y=2`],
    ];
    const requests = cases.map(([path, xUrl]) => ({
      method: 'GET', path, headers: {}, body: null,
      expect: { status: 200, xUrl, resp: Buffer.alloc(0) },
    }));
    // Token in the query instead of the header: accepted and stripped (protocol §3.1).
    requests.push({
      method: 'GET', path: `/${hc}/q?z=1&sb-hc-token=${encodeURIComponent(token)}`, headers: {},
      body: null, noAuthHeader: true,
      expect: { status: 200, xUrl: `/${hc}/q?z=1`, resp: Buffer.alloc(0) },
    });
    return requests;
  }
  if (scenario === 'statuses') {
    return STATUSES.map(([status, message]) => ({
      method: 'GET', path: base, headers: { 'x-want-status': String(status), 'x-want-len': '16' },
      body: null,
      expect: { status, statusMessage: message, xUrl: base, resp: common.content('response/16', 16) },
    }));
  }
  return common.fail(`unknown scenario ${JSON.stringify(scenario)} `
    + '(expected bodies, multi-header, query or statuses)');
}

/** Sends one request and resolves with the status, reason, headers and whole body. */
function send(request) {
  return new Promise((resolve, reject) => {
    const headers = { ...request.headers };
    if (!request.noAuthHeader) {
      headers.ServiceBusAuthorization = token;
    }
    if (request.body !== null) {
      headers['content-length'] = String(request.body.length);
    }
    const req = http.request({
      host: cfg.host, port: cfg.port, method: request.method, path: request.path, headers, agent,
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(request.body === null ? undefined : request.body);
  });
}

/** Compares one answer with the plan; returns the result line. */
function check(scenario, request, res, body) {
  const sent = request.body === null ? Buffer.alloc(0) : request.body;
  const h = res.headers;
  const result = {
    event: 'response',
    scenario,
    method: request.method,
    path: common.redactToken(request.path),
    status: res.statusCode,
    status_message: res.statusMessage,
    req_len: sent.length,
    req_sha256: common.sha256(sent),
    resp_len: body.length,
    resp_sha256: common.sha256(body),
    x_method: h['x-method'] === undefined ? null : h['x-method'],
    // Redacted for output only; a relay that fails to strip sb-hc-token still fails the
    // comparison below, which uses the raw value.
    x_url: h['x-url'] === undefined ? null : common.redactToken(h['x-url']),
    x_body_len: h['x-body-len'] === undefined ? null : Number(h['x-body-len']),
    x_body_sha256: h['x-body-sha256'] === undefined ? null : h['x-body-sha256'],
    x_multi: h['x-multi'] === undefined ? null : h['x-multi'],
    via: h.via === undefined ? null : h.via,
  };
  const e = request.expect;
  const problems = [];
  const want = (name, actual, expected) => {
    if (actual !== expected) {
      problems.push(`${name}: expected ${JSON.stringify(expected)}, `
        + `got ${common.redactToken(JSON.stringify(actual))}`);
    }
  };
  want('status', result.status, e.status);
  if (e.statusMessage !== undefined) {
    want('status_message', result.status_message, e.statusMessage);
  }
  want('x-method', result.x_method, request.method);
  want('x-url', h['x-url'] === undefined ? null : h['x-url'], e.xUrl);
  want('x-body-len', result.x_body_len, sent.length);
  want('x-body-sha256', result.x_body_sha256, result.req_sha256);
  want('response length', result.resp_len, e.resp.length);
  want('response sha256', result.resp_sha256, common.sha256(e.resp));
  if (e.xMulti !== undefined) {
    want('x-multi', result.x_multi, e.xMulti);
  }
  result.ok = problems.length === 0;
  result.problems = problems;
  return result;
}

async function main() {
  const scenario = process.argv[2];
  const requests = plan(scenario);
  let ok = 0;
  for (const request of requests) {
    phase = `waiting for ${request.method} ${common.redactToken(request.path)} `
      + `(${request.body === null ? 0 : request.body.length} B)`;
    const { res, body } = await send(request);
    const result = check(scenario, request, res, body);
    common.emit(result);
    ok += result.ok ? 1 : 0;
  }
  common.emit({ event: 'summary', scenario, requests: requests.length, ok });
  if (ok !== requests.length) {
    common.fail(`${requests.length - ok} of ${requests.length} responses did not match (see problems)`);
  }
  process.exit(0);
}

main().catch((error) => common.fail(`${String((error && error.message) || error)} (while ${phase})`));
