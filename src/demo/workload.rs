//! What the demo's senders send: request `i` of the HTTP run and the payload of stream `i`,
//! both derived from the index alone, with the answer the sample ERP service must give.
//!
//! The request mix, by index: every 25th request (24, 49, ...) replicates the same batch of
//! materials (`BAPI_MATERIAL_SAVEREPLICA`) with request and answer bodies both over 64 KiB, so
//! they travel through a rendezvous socket instead of the control channel (protocol §6.1, §6.3); of
//! the others every third reads a material (`GET`, with a query string, §6.7) and the rest
//! check availability (`POST`, a small JSON body on the control channel, §6.2).
//!
//! [`Workload`] builds the batch and its answer once: the senders share one thread, and JSON
//! work for 100 KiB bodies between requests would show up as latency of the requests in flight.

use std::borrow::Cow;

use serde_json::json;

use super::erp;

/// Request indices `i` with `i % LARGE_EVERY == LARGE_EVERY - 1` carry large bodies.
pub(crate) const LARGE_EVERY: usize = 25;

/// Items in a large `BAPI_MATERIAL_SAVEREPLICA` call (about 110 KiB up, 75 KiB down).
const LARGE_ITEMS: usize = 1_200;

/// The binary messages each stream sends, by size: small ones, and full 64 KiB ones as a
/// bridge writes them (protocol §5.3).
pub(crate) const STREAM_MESSAGE_SIZES: [usize; 7] = [1, 17, 512, 4_096, 16_384, 65_536, 65_536];

/// One relayed HTTP request of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRequest {
    pub method: &'static str,
    /// The path and query below the hybrid connection (`/api/...`).
    pub path: String,
    pub body: Vec<u8>,
}

impl PlannedRequest {
    /// The request target the sender uses: `/{hc}/api/...` (protocol §7.2).
    pub(crate) fn sender_target(&self, hc: &str) -> String {
        format!("/{hc}{}", self.path)
    }

    /// The request target the sample service receives after the daemon maps it onto
    /// `http_target` (protocol §6.7).
    pub(crate) fn upstream_target(&self) -> String {
        format!("{}{}", erp::BASE_PATH, self.path)
    }

    /// What the sample service answers to it.
    pub(crate) fn expected(&self) -> erp::Answer {
        erp::answer(self.method, &self.upstream_target(), &self.body)
    }

    /// Whether its body goes through a rendezvous (over the 64 KiB control-channel limit).
    pub(crate) fn is_large(&self) -> bool {
        self.body.len() > crate::relay::config::CONTROL_CHANNEL_BODY_LIMIT
    }
}

/// Whether request `index` is the large replication batch.
pub(crate) fn is_large(index: usize) -> bool {
    index % LARGE_EVERY == LARGE_EVERY - 1
}

/// Request `index` of the run.
pub(crate) fn request(index: usize) -> PlannedRequest {
    if is_large(index) {
        return replication_batch();
    }
    let material = format!("M-{index:06}");
    if index.is_multiple_of(3) {
        let plant = 1000 + index % 4 * 1000;
        return PlannedRequest {
            method: "GET",
            path: format!("/api/materials/{material}?plant={plant}"),
            body: Vec::new(),
        };
    }
    post(json!({
        "function": "BAPI_MATERIAL_AVAILABILITY",
        "material": material,
        "plant": "1000",
        "quantity": index % 50 + 1,
    }))
}

/// The large call: a batch of [`LARGE_ITEMS`] materials to replicate.
fn replication_batch() -> PlannedRequest {
    let materials: Vec<_> = (0..LARGE_ITEMS)
        .map(|item| {
            json!({
                "material": format!("R-{item:06}"),
                "description": format!("Demo material {item} of {LARGE_ITEMS}, replicated from the sample ERP system"),
            })
        })
        .collect();
    post(json!({ "function": "BAPI_MATERIAL_SAVEREPLICA", "materials": materials }))
}

/// A request of the run with the answer the sample service gives to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned<'a> {
    pub request: Cow<'a, PlannedRequest>,
    pub expected: Cow<'a, erp::Answer>,
}

/// The run's requests, with the large batch and its answer built once.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    batch: PlannedRequest,
    batch_answer: erp::Answer,
}

impl Workload {
    /// Builds the large batch and its answer.
    pub(crate) fn new() -> Self {
        let batch = replication_batch();
        let batch_answer = batch.expected();
        Self {
            batch,
            batch_answer,
        }
    }

    /// Request `index` and its answer.
    pub(crate) fn planned(&self, index: usize) -> Planned<'_> {
        if is_large(index) {
            return Planned {
                request: Cow::Borrowed(&self.batch),
                expected: Cow::Borrowed(&self.batch_answer),
            };
        }
        let request = request(index);
        let expected = request.expected();
        Planned {
            request: Cow::Owned(request),
            expected: Cow::Owned(expected),
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

fn post(body: serde_json::Value) -> PlannedRequest {
    PlannedRequest {
        method: "POST",
        path: "/api/bapi".to_owned(),
        body: body.to_string().into_bytes(),
    }
}

/// The kinds of request among the first `count` of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mix {
    /// `GET /api/materials/{id}`.
    pub gets: usize,
    /// `POST /api/bapi`, small and large.
    pub posts: usize,
    /// Posts with bodies over 64 KiB.
    pub large: usize,
}

/// The mix of the first `count` requests.
pub(crate) fn mix(count: usize) -> Mix {
    let large = count / LARGE_EVERY;
    let gets = (0..count).filter(|&i| !is_large(i) && i % 3 == 0).count();
    Mix {
        gets,
        posts: count - gets,
        large,
    }
}

/// The bytes stream `index` sends (and must get back): pseudo-random, reproducible per index.
pub(crate) fn stream_payload(index: usize) -> Vec<u8> {
    let mut rng =
        fastrand::Rng::with_seed(0x6879_636f_6400_0000 ^ u64::try_from(index).unwrap_or(u64::MAX));
    let total: usize = STREAM_MESSAGE_SIZES.iter().sum();
    (0..total).map(|_| rng.u8(..)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_of_the_mix_is_answered_200() {
        for index in 0..LARGE_EVERY * 2 {
            let request = request(index);
            let expected = request.expected();
            assert_eq!(
                expected.status,
                200,
                "request {index}: {}",
                String::from_utf8_lossy(&expected.body)
            );
        }
    }

    #[test]
    fn the_mix_has_gets_small_posts_and_large_posts() {
        assert_eq!(request(0).method, "GET");
        assert!(request(0).path.contains("?plant="));
        assert_eq!(request(1).method, "POST");
        assert!(!request(1).is_large());
        let large = request(LARGE_EVERY - 1);
        assert!(large.is_large(), "{} bytes", large.body.len());
        assert!(
            large.expected().body.len() > crate::relay::config::CONTROL_CHANNEL_BODY_LIMIT,
            "the answer travels through a rendezvous too"
        );
        let planned: Vec<PlannedRequest> = (0..300).map(request).collect();
        let counted = Mix {
            gets: planned.iter().filter(|r| r.method == "GET").count(),
            posts: planned.iter().filter(|r| r.method == "POST").count(),
            large: planned.iter().filter(|r| r.is_large()).count(),
        };
        assert_eq!(mix(300), counted);
        assert_eq!(counted.large, 12);
        assert_eq!(mix(24).large, 0);
        assert_eq!(mix(25).large, 1);
    }

    #[test]
    fn the_workload_hands_out_each_request_with_its_answer() {
        let workload = Workload::new();
        for index in [0, 1, LARGE_EVERY - 1, 2 * LARGE_EVERY - 1] {
            let planned = workload.planned(index);
            assert_eq!(*planned.request, request(index), "request {index}");
            assert_eq!(
                *planned.expected,
                request(index).expected(),
                "request {index}"
            );
        }
        assert!(matches!(
            workload.planned(LARGE_EVERY - 1).request,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn targets_map_from_the_hybrid_connection_onto_the_service_base() {
        let r = request(3);
        assert_eq!(
            r.sender_target("erp-api"),
            "/erp-api/api/materials/M-000003?plant=4000"
        );
        assert_eq!(
            r.upstream_target(),
            "/ErpConnect/api/materials/M-000003?plant=4000"
        );
    }

    #[test]
    fn stream_payloads_are_reproducible_and_differ_per_stream() {
        let total: usize = STREAM_MESSAGE_SIZES.iter().sum();
        assert_eq!(stream_payload(0).len(), total);
        assert_eq!(stream_payload(1), stream_payload(1));
        assert_ne!(stream_payload(1), stream_payload(2));
    }
}
