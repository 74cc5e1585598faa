'use strict';
// Listener authentication failures seen through the official SDKs' own listener APIs
// (protocol §3.4, §4.1, §8.1). One case per run:
//
//   node auth-failures.js wrong-key         hyco-ws listener, token signed with a random key
//                                           that is not the rule's key          -> 401
//   node auth-failures.js expired           hyco-https listener, token whose se is an hour
//                                           in the past (createRelayToken with -3600 s) -> 401
//   node auth-failures.js send-only-listen  hyco-ws listener, valid token of a Send-only rule
//                                           (HYCO_SEND_KEY_NAME / HYCO_SEND_KEY)  -> 403
//
// Both SDKs surface the refused upgrade only as an 'error' event whose message carries the
// status: hyco-ws (ws 1.1.5) "unexpected server response (401)", hyco-https (ws 6.2.7)
// "Unexpected server response: 401". The first failure is recorded and the process exits at
// once: hyco-ws would otherwise reconnect without delay, forever (protocol §10.4 #7).
//
// Output: {"event":"auth-failure","case":C,"sdk":S,"status":N|null,"expected_status":N,
//          "message":M,"ok":bool}
// Exit status is non-zero if the listener was accepted or the status differs.

const crypto = require('crypto');
const common = require('./common');

const CASES = {
  'wrong-key': { sdk: 'hyco-ws', expected: 401 },
  expired: { sdk: 'hyco-https', expected: 401 },
  'send-only-listen': { sdk: 'hyco-ws', expected: 403 },
};

const caseName = process.argv[2];
const spec = CASES[caseName];
if (spec === undefined) {
  common.fail(`unknown case ${JSON.stringify(caseName)} (expected ${Object.keys(CASES).join(', ')})`);
}
common.armDeadline(() => `waiting for the ${spec.sdk} listener to fail (${caseName})`);

const cfg = common.config();
const sdk = require(spec.sdk);
const audience = common.tokenAudience(cfg);

function token() {
  if (caseName === 'wrong-key') {
    return sdk.createRelayToken(audience, cfg.keyName, crypto.randomBytes(32).toString('base64'));
  }
  if (caseName === 'expired') {
    // createRelayToken only defaults falsy lifetimes, so a negative one yields se = now - 3600.
    return sdk.createRelayToken(audience, cfg.keyName, cfg.key, -3600);
  }
  const sendKeyName = common.requireEnv('HYCO_SEND_KEY_NAME');
  const sendKey = common.requireEnv('HYCO_SEND_KEY');
  return sdk.createRelayToken(audience, sendKeyName, sendKey);
}

const options = { server: common.listenUri(cfg, `node-auth-${caseName}`), token };
const server = spec.sdk === 'hyco-ws'
  ? sdk.createRelayedServer(options, () => {})
  : sdk.createRelayedServer(options, (req, res) => res.end());

server.on('listening', () => {
  common.emit({
    event: 'auth-failure', case: caseName, sdk: spec.sdk, status: 101,
    expected_status: spec.expected, message: 'listener was accepted', ok: false,
  });
  common.fail(`${caseName}: the relay accepted the ${spec.sdk} listener (expected ${spec.expected})`);
});

server.on('error', (error) => {
  const message = String((error && error.message) || error);
  const status = common.statusFromError(error);
  const ok = status === spec.expected;
  common.emit({
    event: 'auth-failure', case: caseName, sdk: spec.sdk, status,
    expected_status: spec.expected, message, ok,
  });
  if (!ok) {
    common.fail(`${caseName}: expected HTTP ${spec.expected} from the relay, ${spec.sdk} reported: ${message}`);
  }
  process.exit(0);
});

if (spec.sdk === 'hyco-https') {
  server.listen();
}
