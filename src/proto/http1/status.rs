//! Standard reason phrases (RFC 9110 §15, plus RFC 6585's 428/429/431 and RFC 7725's 451).

/// The standard reason phrase of `status`, or `""` for a code without one (an empty reason
/// phrase is valid on the wire, RFC 9112 §4).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes() {
        let cases = [
            (101, "Switching Protocols"),
            (200, "OK"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (410, "Gone"),
            (426, "Upgrade Required"),
            (431, "Request Header Fields Too Large"),
            (502, "Bad Gateway"),
            (504, "Gateway Timeout"),
        ];
        for (status, reason) in cases {
            assert_eq!(reason_phrase(status), reason);
        }
    }

    #[test]
    fn unknown_codes_have_no_phrase() {
        for status in [0, 299, 418, 599, 999] {
            assert_eq!(reason_phrase(status), "", "{status}");
        }
    }
}
