//! The sample ERP web service the demo puts behind the relay, standing in for an SAP system
//! exposed through an ERPConnect-style REST API. Pure: a request (method, target, body) maps to
//! exactly one answer, so the senders can compute what the upstream must have said and compare
//! it byte for byte with what came back through the relay and the daemon.
//!
//! - `POST {BASE_PATH}/api/bapi` with `{"function": "BAPI_MATERIAL_AVAILABILITY", "material",
//!   "plant", "quantity"}` answers the available and confirmed quantity;
//!   `{"function": "BAPI_MATERIAL_SAVEREPLICA", "materials": [{"material", "description"}]}`
//!   answers one material number per item (large requests give large answers).
//! - `GET {BASE_PATH}/api/materials/{id}[?plant=P]` answers the material's master data.
//!
//! Anything else is 404 (unknown path), 405 (wrong method) or 400 (a body that is not a known
//! call), each with an SAP-style `RETURN` object (`type` `E` and a message).

use serde::Deserialize;
use serde_json::{json, Value};

/// The path prefix of the API (the daemon's `http_target` ends in it).
pub(crate) const BASE_PATH: &str = "/ErpConnect";

/// The media type of every answer.
pub(crate) const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The longest material id the API accepts.
const MAX_MATERIAL_ID: usize = 40;

/// The plant used when a request names none.
const DEFAULT_PLANT: &str = "1000";

/// One answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    /// JSON text.
    pub body: Vec<u8>,
}

/// A BAPI call, told apart by its `function` field.
#[derive(Debug, Deserialize)]
#[serde(tag = "function", deny_unknown_fields)]
enum BapiCall {
    #[serde(rename = "BAPI_MATERIAL_AVAILABILITY")]
    Availability {
        material: String,
        plant: String,
        quantity: u64,
    },
    #[serde(rename = "BAPI_MATERIAL_SAVEREPLICA")]
    SaveReplica { materials: Vec<MaterialData> },
}

/// One item of `BAPI_MATERIAL_SAVEREPLICA`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterialData {
    material: String,
    description: String,
}

/// The answer to `method target` with request body `body`; `target` is the origin-form
/// request target the upstream received (`/ErpConnect/api/...?...`).
pub(crate) fn answer(method: &str, target: &str, body: &[u8]) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(route) = path.strip_prefix(BASE_PATH) else {
        return error(404, &format!("no such resource: {path}"));
    };
    if route == "/api/bapi" {
        if method != "POST" {
            return error(405, "call a BAPI with POST");
        }
        return bapi(body);
    }
    if let Some(id) = route.strip_prefix("/api/materials/") {
        if method != "GET" {
            return error(405, "read a material with GET");
        }
        if !is_material_id(id) {
            return error(404, &format!("no such material: {id}"));
        }
        let plant = plant_of(query);
        return ok(json!({
            "material": id,
            "description": format!("Demo material {id}"),
            "base_unit": "PC",
            "plant": plant,
            "stock": stock(id, &plant),
            "return": success("material read"),
        }));
    }
    error(404, &format!("no such resource: {path}"))
}

fn bapi(body: &[u8]) -> Answer {
    let call: BapiCall = match serde_json::from_slice(body) {
        Ok(call) => call,
        Err(e) => return error(400, &format!("not a known BAPI call: {e}")),
    };
    match call {
        BapiCall::Availability {
            material,
            plant,
            quantity,
        } => {
            if !is_material_id(&material) {
                return error(400, &format!("invalid material id {material:?}"));
            }
            let available = stock(&material, &plant);
            ok(json!({
                "function": "BAPI_MATERIAL_AVAILABILITY",
                "material": material,
                "plant": plant,
                "requested": quantity,
                "available": available,
                "confirmed": quantity.min(available),
                "return": success("availability checked"),
            }))
        }
        BapiCall::SaveReplica { materials } => {
            let results: Vec<Value> = materials
                .iter()
                .map(|m| {
                    json!({
                        "material": m.material,
                        "number": format!("{:010}", fnv1a(m.description.as_bytes()) % 10_000_000_000),
                        "status": "S",
                    })
                })
                .collect();
            ok(json!({
                "function": "BAPI_MATERIAL_SAVEREPLICA",
                "saved": results.len(),
                "results": results,
                "return": success("materials saved"),
            }))
        }
    }
}

/// `[A-Za-z0-9-]{1,40}`.
fn is_material_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MATERIAL_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The `plant` query parameter, or the default plant.
fn plant_of(query: &str) -> String {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("plant="))
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or(DEFAULT_PLANT)
        .to_owned()
}

/// A made-up but stable stock level of `material` in `plant`.
fn stock(material: &str, plant: &str) -> u64 {
    fnv1a(format!("{material}@{plant}").as_bytes()) % 500
}

/// FNV-1a, 64 bit: a stable hash for made-up master data.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn success(message: &str) -> Value {
    json!({ "type": "S", "message": message })
}

fn ok(value: Value) -> Answer {
    Answer {
        status: 200,
        body: value.to_string().into_bytes(),
    }
}

fn error(status: u16, message: &str) -> Answer {
    Answer {
        status,
        body: json!({ "return": { "type": "E", "message": message } })
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(answer: &Answer) -> Value {
        serde_json::from_slice(&answer.body).expect("JSON body")
    }

    #[test]
    fn availability_confirms_at_most_the_stock() {
        let body = br#"{"function":"BAPI_MATERIAL_AVAILABILITY","material":"M-000001","plant":"1000","quantity":1000}"#;
        let a = answer("POST", "/ErpConnect/api/bapi", body);
        assert_eq!(a.status, 200);
        let v = json_of(&a);
        assert_eq!(v["material"], "M-000001");
        assert_eq!(v["requested"], 1000);
        assert_eq!(v["available"], stock("M-000001", "1000"));
        assert_eq!(v["confirmed"], stock("M-000001", "1000"));
        assert_eq!(v["return"]["type"], "S");
        assert_eq!(a, answer("POST", "/ErpConnect/api/bapi", body), "stable");
    }

    #[test]
    fn save_replica_answers_one_number_per_item() {
        let body = br#"{"function":"BAPI_MATERIAL_SAVEREPLICA","materials":[{"material":"A","description":"x"},{"material":"B","description":"y"}]}"#;
        let v = json_of(&answer("POST", "/ErpConnect/api/bapi", body));
        assert_eq!(v["saved"], 2);
        assert_eq!(v["results"][1]["material"], "B");
        assert_eq!(v["results"][0]["number"].as_str().map(str::len), Some(10));
    }

    #[test]
    fn materials_are_read_with_the_plant_from_the_query() {
        let a = answer("GET", "/ErpConnect/api/materials/M-7?plant=2000", b"");
        assert_eq!(a.status, 200);
        let v = json_of(&a);
        assert_eq!(v["plant"], "2000");
        assert_eq!(v["stock"], stock("M-7", "2000"));
        let default = json_of(&answer("GET", "/ErpConnect/api/materials/M-7", b""));
        assert_eq!(default["plant"], DEFAULT_PLANT);
    }

    #[test]
    fn unknown_paths_and_bad_ids_are_404() {
        assert_eq!(answer("GET", "/api/materials/M-7", b"").status, 404);
        assert_eq!(answer("GET", "/ErpConnect/api/orders", b"").status, 404);
        assert_eq!(
            answer("GET", "/ErpConnect/api/materials/M%207", b"").status,
            404
        );
        let long = format!("/ErpConnect/api/materials/{}", "A".repeat(41));
        assert_eq!(answer("GET", &long, b"").status, 404);
    }

    #[test]
    fn wrong_methods_are_405() {
        assert_eq!(answer("GET", "/ErpConnect/api/bapi", b"").status, 405);
        assert_eq!(
            answer("DELETE", "/ErpConnect/api/materials/M-7", b"").status,
            405
        );
    }

    #[test]
    fn bodies_that_are_no_known_call_are_400_with_an_error_return() {
        for body in [
            &b"not json"[..],
            br#"{"function":"BAPI_UNKNOWN"}"#,
            br#"{"function":"BAPI_MATERIAL_AVAILABILITY","material":"M-1","plant":"1000"}"#,
            br#"{"function":"BAPI_MATERIAL_AVAILABILITY","material":"bad id","plant":"1","quantity":1}"#,
        ] {
            let a = answer("POST", "/ErpConnect/api/bapi", body);
            assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(json_of(&a)["return"]["type"], "E");
        }
    }
}
