//! Writing a `response` (protocol §4.5) straight to its wire text, without serde's map machinery:
//! the listener sends one per relayed request.
//!
//! The output is byte for byte what serde_json writes for the same [`Response`] (members in
//! declaration order, absent optional members omitted, strings escaped as serde_json escapes
//! them; [`super::json_text`] writes the strings).

use super::headers::{join_separator, value_text};
use super::json_text::{push_object, push_string, push_string_contents, push_u16};
use super::messages::Response;

/// The exact wire text `{"response":{…}}` of `response`.
pub(crate) fn encode(response: &Response) -> String {
    let strings = response.request_id.len()
        + response.status_description.as_ref().map_or(0, String::len)
        + response.response_headers.as_ref().map_or(0, |headers| {
            headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 6)
                .sum()
        });
    let mut out = String::with_capacity(strings + 128);
    out.push_str(r#"{"response":{"requestId":"#);
    push_string(&mut out, &response.request_id);
    out.push_str(r#","statusCode":"#);
    push_u16(&mut out, response.status_code);
    if let Some(description) = &response.status_description {
        out.push_str(r#","statusDescription":"#);
        push_string(&mut out, description);
    }
    if let Some(headers) = &response.response_headers {
        out.push_str(r#","responseHeaders":"#);
        push_object(&mut out, headers.iter());
    }
    out.push_str(if response.body {
        r#","body":true}}"#
    } else {
        r#","body":false}}"#
    });
    out
}

/// The exact wire text of the `response` with `request_id`, `status_code`, `status_description`
/// and, as `responseHeaders`, the fields `headers` (values read as text by [`value_text`]) joined as [`JsonHeaders::append_joined`](super::json_headers::JsonHeaders::append_joined)
/// joins them (a repeated name, compared case-insensitively, keeps its first spelling and
/// position; its values joined with [`join_separator`]): byte for byte what [`encode`] writes
/// for that [`Response`], without building it.
pub(crate) fn encode_parts(
    request_id: &str,
    status_code: u16,
    status_description: &str,
    headers: &[(&str, &[u8])],
    body: bool,
) -> String {
    let strings = request_id.len()
        + status_description.len()
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum::<usize>();
    let mut out = String::with_capacity(strings + 128);
    out.push_str(r#"{"response":{"requestId":"#);
    push_string(&mut out, request_id);
    out.push_str(r#","statusCode":"#);
    push_u16(&mut out, status_code);
    out.push_str(r#","statusDescription":"#);
    push_string(&mut out, status_description);
    out.push_str(r#","responseHeaders":{"#);
    let mut first = true;
    for (index, (name, value)) in headers.iter().enumerate() {
        let earlier = &headers[..index];
        if earlier
            .iter()
            .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_string(&mut out, name);
        out.push_str(":\"");
        push_value_content(&mut out, value);
        let separator = join_separator(name);
        for (_, later) in headers[index + 1..]
            .iter()
            .filter(|(other, _)| other.eq_ignore_ascii_case(name))
        {
            out.push_str(separator);
            push_value_content(&mut out, later);
        }
        out.push('"');
    }
    out.push_str(if body {
        r#"},"body":true}}"#
    } else {
        r#"},"body":false}}"#
    });
    out
}

/// A header value as [`value_text`] reads it, escaped as inside a JSON string without the
/// quotes.
fn push_value_content(out: &mut String, value: &[u8]) {
    push_string_contents(out, &value_text(value));
}

#[cfg(test)]
mod tests {
    use super::super::json_headers::JsonHeaders;
    use super::*;

    /// What serde_json writes for the same response (the encoding before this writer).
    fn serde_text(response: &Response) -> String {
        #[derive(serde::Serialize)]
        enum Outgoing<'a> {
            #[serde(rename = "response")]
            Response(&'a Response),
        }
        serde_json::to_string(&Outgoing::Response(response)).unwrap()
    }

    #[test]
    fn matches_serde_json_byte_for_byte() {
        let strings = [
            "",
            "OK",
            "a\"b\\c",
            "tab\there\nnew\r\u{0}\u{1f}\u{7f}",
            "ünïcödé ✓ 😀",
            "</script>",
            "\u{8}\u{c}",
        ];
        for (index, text) in strings.iter().enumerate() {
            let headers: JsonHeaders = [("Content-Type", *text), (*text, "v"), ("X-Empty", "")]
                .into_iter()
                .collect();
            for status in [100, 200, 404, 999, 0, 9, 10, 65535] {
                for body in [false, true] {
                    let full = Response {
                        request_id: format!("{text}-{index}"),
                        status_code: status,
                        status_description: Some((*text).to_owned()),
                        response_headers: Some(headers.clone()),
                        body,
                    };
                    assert_eq!(encode(&full), serde_text(&full), "{full:?}");
                    let bare = Response {
                        status_description: None,
                        response_headers: None,
                        ..full.clone()
                    };
                    assert_eq!(encode(&bare), serde_text(&bare), "{bare:?}");
                    let empty_headers = Response {
                        response_headers: Some(JsonHeaders::new()),
                        ..full
                    };
                    assert_eq!(encode(&empty_headers), serde_text(&empty_headers));
                }
            }
        }
    }
}
