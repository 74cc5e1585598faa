use super::*;
use crate::proto::hc::json_headers::JsonHeaders;
use crate::proto::hc::messages::Response;
use crate::proto::hc::response_json;

fn response(
    request_id: &str,
    status_code: u16,
    description: Option<&str>,
    headers: Option<&[(&str, &str)]>,
    body: bool,
) -> Response {
    Response {
        request_id: request_id.to_owned(),
        status_code,
        status_description: description.map(str::to_owned),
        response_headers: headers.map(|pairs| pairs.iter().copied().collect::<JsonHeaders>()),
        body,
    }
}

/// Texts as listeners write them: this reader's own shapes.
fn usual_texts() -> Vec<String> {
    let headers: &[(&str, &str)] = &[
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Date", "Sat, 05 Dec 2026 07:00:00 GMT"),
        ("X-Café", "naïve 日本 😀"),
        ("x-empty", ""),
    ];
    let mut texts = vec![
        response_json::encode(&response("r1", 200, None, None, true)),
        response_json::encode(&response(
            "aa0b16c2e3f94d3a8b6e2c5d7f901234_G0",
            404,
            Some("Not Found"),
            Some(headers),
            false,
        )),
        response_json::encode(&response("x", 999, Some(""), Some(&[]), true)),
        response_json::encode(&response("x", 100, None, Some(&headers[..1]), false)),
    ];
    let wire: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    texts.push(response_json::encode_parts(
        "0123456789abcdef0123456789abcdef_G3",
        201,
        "Created",
        &wire,
        true,
    ));
    texts
}

#[test]
fn the_usual_texts_are_read_here_as_serde_reads_them() {
    for text in usual_texts() {
        assert!(read_as_serde_reads(&text), "{text}");
    }
}

#[test]
fn other_valid_shapes_are_read_here_as_serde_reads_them() {
    let texts = [
        " \t\r\n{ \"response\" :\n{ \"requestId\" : \"r\" , \"statusCode\" : 200 , \"body\" : true } } \n",
        r#"{"response":{"body":false,"responseHeaders":{"A":"1","a":"2","A":"3"},"statusCode":"302","statusDescription":"Found","requestId":"id"}}"#,
        r#"{"response":{"requestId":"r","statusCode":100,"statusDescription":null,"responseHeaders":null,"body":true}}"#,
        r#"{"response":{"requestId":"","statusCode":"999","responseHeaders":{},"body":false}}"#,
        r#"{"response":{"requestId":"r/ü","statusCode":500,"statusDescription":"é","body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true}}"#,
    ];
    for text in texts {
        assert!(read_as_serde_reads(text), "{text}");
    }
}

#[test]
fn anything_else_is_left_to_serde() {
    let texts = [
        r#"{"response":{"requestId":"a\/b","statusCode":200,"body":true}}"#,
        r#"{"respon\u0073e":{"requestId":"r","statusCode":200,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"X-\u00e9":"v"},"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true,"extra":1}}"#,
        r#"{"response":{"requestId":"r","requestId":"s","statusCode":200,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200}}"#,
        r#"{"response":{"statusCode":200,"body":true}}"#,
        r#"{"response":{"requestId":"r","body":true}}"#,
        r#"{"response":{}}"#,
        r#"{"response":{"requestId":"r","statusCode":099,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":"099","body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":1000,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":"1000","body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":20,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":"20","body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200.0,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":2e2,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200e0,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":-200,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":"true"}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":truex}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":tru}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":null}}"#,
        r#"{"response":{"requestId":null,"statusCode":200,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"statusDescription":nul,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"statusDescription":7,"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"A":1},"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"A":null},"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"A":"1",},"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":[],"body":true}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true,}}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true}"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true}} x"#,
        r#"{"response":{"requestId":"r","statusCode":200,"body":true},"response":{}}"#,
        r#"{"Response":{"requestId":"r","statusCode":200,"body":true}}"#,
        "{\"response\":{\"requestId\":\"a\tb\",\"statusCode\":200,\"body\":true}}",
        "{\"response\":{\"requestId\":\"r\",\"statusCode\":200,\"body\":true}}\u{a0}",
        "{\"response\":{\"requestId\":\"r\",\"statusCode\":200\u{c},\"body\":true}}",
        "[]",
        "{}",
        "",
        "{",
        "{\"response\"",
    ];
    for text in texts {
        assert!(scan(text).is_none(), "{text}");
    }
}

/// Bytes that change a text's meaning most: structure, whitespace, escapes, digits, words.
const MUTANT_BYTES: &[u8] = b" \t\n\r\x00\x1f\x7f\"\\,:{}[]019.eE-+ntfxrue/";

/// Every text one edit away from `text`: a byte replaced, removed or added, or the text cut.
fn one_edit_away(text: &str) -> Vec<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for at in 0..=bytes.len() {
        out.push(bytes[..at].to_vec());
        for &byte in MUTANT_BYTES {
            let mut added = bytes.to_vec();
            added.insert(at, byte);
            out.push(added);
            if at < bytes.len() {
                let mut replaced = bytes.to_vec();
                replaced[at] = byte;
                out.push(replaced);
            }
        }
        if at < bytes.len() {
            let mut removed = bytes.to_vec();
            removed.remove(at);
            out.push(removed);
        }
    }
    out
}

#[test]
fn texts_one_edit_away_are_read_here_only_as_serde_reads_them() {
    let mut bases = usual_texts();
    bases.push(
        r#" {"response" : {"statusCode":"204","requestId":"q","statusDescription":null,"responseHeaders":{"a":"b","a":"c"},"body":false}} "#
            .to_owned(),
    );
    let (mut read, mut total) = (0, 0);
    for base in &bases {
        for mutant in one_edit_away(base) {
            let Ok(text) = std::str::from_utf8(&mutant) else {
                continue;
            };
            total += 1;
            if read_as_serde_reads(text) {
                read += 1;
            }
        }
    }
    // Many edits (inside strings, whitespace, digits) leave a valid `response`.
    assert!(read > total / 10, "{read} of {total}");
}

#[test]
fn texts_several_edits_away_are_read_here_only_as_serde_reads_them() {
    let bases = usual_texts();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).expect("small")
    };
    for round in 0..20_000 {
        let mut text = bases[round % bases.len()].clone().into_bytes();
        for _ in 0..1 + next() % 4 {
            let at = next() % (text.len() + 1);
            let byte = MUTANT_BYTES[next() % MUTANT_BYTES.len()];
            match next() % 3 {
                0 => text.insert(at, byte),
                1 if at < text.len() => text[at] = byte,
                _ if at < text.len() => {
                    text.remove(at);
                }
                _ => {}
            }
        }
        if let Ok(text) = std::str::from_utf8(&text) {
            read_as_serde_reads(text);
        }
    }
}
