'use strict';
// Echo listener on the official hyco-ws SDK (createRelayedServer, protocol §10.2, §10.5).
//
// Usage: node ws-listener.js            (configuration from the environment, see common.js)
//
// Output, one JSON object per line:
//   {"event":"listening"}                         control channel open (hyco-ws emits 'listening'
//                                                 from the control WebSocket's onopen, i.e. on 101)
//   {"event":"open","conn":N}                     rendezvous N open (N counts accepts from 0)
//   {"event":"closed","conn":N,"code":C,"initiator":"peer"|"listener"}
//
// Behaviour: every message is echoed back with the same type (binary stays binary, text stays
// text). The text message CLOSE_COMMAND instead makes the listener close that stream with 1000,
// so a sender can test a listener-initiated close. Any error on the control channel is fatal:
// hyco-ws would otherwise reconnect immediately and forever (protocol §10.4 #7).

const WebSocket = require('hyco-ws');
const common = require('./common');

const CLOSE_COMMAND = 'hycod-interop:close';

const cfg = common.config();
let phase = 'connecting the control channel';
common.exitWhenParentGoes();

let accepted = 0;

const server = WebSocket.createRelayedServer(
  {
    server: common.listenUri(cfg, 'node-ws-listener'),
    // A function, so hyco-ws mints a fresh token on every (re)connect (protocol §8.4).
    token: () => WebSocket.createRelayToken(common.tokenAudience(cfg), cfg.keyName, cfg.key),
  },
  (ws) => {
    // 'connection' fires while the rendezvous socket is still CONNECTING (protocol §10.3):
    // nothing may be sent before 'open'. Echoing only ever happens after a message arrived.
    const conn = accepted;
    accepted += 1;
    let initiator = 'peer';
    ws.on('open', () => common.emit({ event: 'open', conn }));
    ws.on('message', (data, flags) => {
      const binary = Boolean(flags && flags.binary);
      if (!binary && data === CLOSE_COMMAND) {
        initiator = 'listener';
        ws.close(1000, 'listener done');
        return;
      }
      ws.send(data, { binary }, (error) => {
        if (error) {
          common.emit({ event: 'stream-error', conn, message: String(error.message || error) });
        }
      });
    });
    ws.on('close', (code) => common.emit({ event: 'closed', conn, code, initiator }));
    ws.on('error', (error) => {
      common.emit({ event: 'stream-error', conn, message: String(error.message || error) });
    });
  },
);

server.on('listening', () => {
  phase = 'serving';
  common.emit({ event: 'listening' });
  // A relay-initiated close of the control channel would make hyco-ws reconnect silently;
  // in these tests it is a failure, so report it and stop.
  server.controlChannel.on('close', (code) => {
    common.fail(`control channel closed by the relay (code ${code}) while ${phase}`);
  });
});

// Mandatory: hyco-ws emits 'error' without checking for listeners (protocol §10.3).
server.on('error', (error) => {
  common.fail(`control channel error while ${phase}: ${String(error.message || error)}`);
});
