//! The scenarios of `node/http-sender.js` and what their answers must be, whoever listens: the
//! hyco-https listener of `node/https-listener.js` (`tests/interop.rs`) or the hycod daemon in
//! front of an upstream that answers the same way (`tests/interop_daemon.rs`).
//!
//! The script checks each answer itself; these checks recompute the expected hashes in Rust
//! (`content.rs`) and check every reported size, status, reason and header again.

use serde_json::Value;

use crate::content::{content, sha256_hex};
use crate::fields::{str_field, u64_field, usize_of};
use crate::harness::ScriptRun;

/// HTTP body sizes, both directions.
const BODY_SIZES: [u64; 4] = [0, 1024, 100 * 1024, 5 * 1024 * 1024];
/// The statuses of the `statuses` scenario with the reason phrase the sender must see: the
/// listener's (protocol §4.5), which the relay passes on.
const STATUSES: [(u64, &str); 4] = [
    (404, "Not Found"),
    (418, "I'm a teapot"),
    (500, "Internal Server Error"),
    (503, "Service Unavailable"),
];

/// One scenario of `http-sender.js`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HttpScenario {
    /// GET (generated response body) and POST (echo) for each of [`BODY_SIZES`].
    Bodies,
    /// `x-multi` sent twice, answered as one `"a, b"` (protocol §4.4).
    MultiHeader,
    /// Query strings byte-exact, `sb-hc-*` parameters stripped (protocol §2.4, §3.1).
    Query,
    /// Non-200 statuses with their reason phrases.
    Statuses,
}

impl HttpScenario {
    /// The script argument.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bodies => "bodies",
            Self::MultiHeader => "multi-header",
            Self::Query => "query",
            Self::Statuses => "statuses",
        }
    }

    /// How many requests the script sends.
    pub(crate) fn requests(self) -> usize {
        match self {
            Self::Bodies => 2 * BODY_SIZES.len(),
            Self::MultiHeader => 1,
            Self::Query => query_urls("hc").len(),
            Self::Statuses => STATUSES.len(),
        }
    }

    /// Checks the summary of a successful `run` and returns its `response` lines.
    pub(crate) fn responses(self, run: &ScriptRun) -> Vec<Value> {
        let requests = u64::try_from(self.requests()).expect("small");
        let summary = run.single("summary");
        assert_eq!(u64_field(summary, "requests"), requests, "{summary}");
        assert_eq!(u64_field(summary, "ok"), requests, "{summary}");
        let responses: Vec<Value> = run.events("response").into_iter().cloned().collect();
        assert_eq!(
            responses.len(),
            self.requests(),
            "response lines: {responses:?}"
        );
        responses
    }

    /// Checks every `response` line of the scenario sent on hybrid connection `hc`.
    pub(crate) fn check(self, responses: &[Value], hc: &str) {
        assert_eq!(
            responses.len(),
            self.requests(),
            "response lines: {responses:?}"
        );
        let base = format!("/{hc}/path?x=1&y=2");
        match self {
            Self::Bodies => {
                for (pair, &len) in responses.chunks(2).zip(&BODY_SIZES) {
                    let size = usize_of(len);
                    let (get, post) = (&pair[0], &pair[1]);
                    assert_eq!(u64_field(get, "status"), 200, "{get}");
                    assert_handler_saw(get, "GET", &base, &[]);
                    assert_response_body(get, &content(&format!("response/{len}"), size));

                    let body = content(&format!("request/{len}"), size);
                    assert_eq!(u64_field(post, "status"), 200, "{post}");
                    assert_handler_saw(post, "POST", &base, &body);
                    assert_response_body(post, &body);
                }
            }
            Self::MultiHeader => {
                let line = &responses[0];
                assert_eq!(u64_field(line, "status"), 200, "{line}");
                assert_handler_saw(line, "GET", &base, &[]);
                // Two `x-multi` lines become one "a, b" in requestHeaders (protocol §4.4).
                assert_eq!(str_field(line, "x_multi"), "a, b", "{line}");
            }
            Self::Query => {
                for (line, url) in responses.iter().zip(&query_urls(hc)) {
                    assert_eq!(u64_field(line, "status"), 200, "{line}");
                    assert_handler_saw(line, "GET", url, &[]);
                    assert_response_body(line, &[]);
                }
            }
            Self::Statuses => {
                for (line, (status, reason)) in responses.iter().zip(&STATUSES) {
                    assert_eq!(u64_field(line, "status"), *status, "{line}");
                    assert_eq!(str_field(line, "status_message"), *reason, "{line}");
                    // x-method proves the handler produced this response, not the relay.
                    assert_handler_saw(line, "GET", &base, &[]);
                    assert_response_body(line, &content("response/16", 16));
                }
            }
        }
    }
}

/// The request-targets the handler must see for the `query` scenario, in order.
fn query_urls(hc: &str) -> [String; 5] {
    [
        format!("/{hc}/path?x=1&y=2"),
        format!("/{hc}"),
        format!("/{hc}/a/b/c?x=1&x=2&empty=&enc=%2F%3A%3D%26"),
        // protocol §2.4: sb-hc-* parameters never reach the listener.
        format!("/{hc}/path?x=1&y=2"),
        // Token in sb-hc-token instead of the header: accepted and stripped (protocol §3.1).
        format!("/{hc}/q?z=1"),
    ]
}

/// Checks what the request handler reported about the request (x-method, x-url, body) and
/// that the response came from it.
fn assert_handler_saw(line: &Value, method: &str, url: &str, request_body: &[u8]) {
    assert_eq!(str_field(line, "method"), method, "{line}");
    assert_eq!(str_field(line, "x_method"), method, "x-method of {line}");
    assert_eq!(str_field(line, "x_url"), url, "x-url of {line}");
    let len = u64::try_from(request_body.len()).expect("fits");
    let sha = sha256_hex(request_body);
    assert_eq!(u64_field(line, "req_len"), len, "{line}");
    assert_eq!(str_field(line, "req_sha256"), sha, "{line}");
    assert_eq!(u64_field(line, "x_body_len"), len, "x-body-len of {line}");
    assert_eq!(
        str_field(line, "x_body_sha256"),
        sha,
        "x-body-sha256 of {line}"
    );
}

fn assert_response_body(line: &Value, body: &[u8]) {
    let len = u64::try_from(body.len()).expect("fits");
    assert_eq!(
        u64_field(line, "resp_len"),
        len,
        "response length of {line}"
    );
    assert_eq!(
        str_field(line, "resp_sha256"),
        sha256_hex(body),
        "response body of {line}"
    );
}
