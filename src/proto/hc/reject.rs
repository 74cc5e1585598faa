//! Rejecting a relayed WebSocket (protocol §5.2): the listener builds the reject URL from the
//! accept `address`; the relay reads the status and description back out of it.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::headers::check_reason_phrase;
use super::messages::{MAX_STATUS_CODE, MIN_STATUS_CODE};
use super::query::{get_query_params, STATUS_CODE_PARAM, STATUS_DESCRIPTION_PARAM};

/// Everything except RFC 3986 unreserved characters is percent-encoded (a space becomes `%20`).
const DESCRIPTION_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The reject URL of protocol §5.2: the accept `address`, verbatim, followed by
/// `&sb-hc-statusCode={code}&sb-hc-statusDescription={percent-encoded description}`.
pub fn reject_url(
    accept_address: &str,
    status_code: u16,
    description: &str,
) -> Result<String, RejectError> {
    if !accept_address.contains('?') {
        return Err(RejectError::AddressWithoutQuery);
    }
    if !(MIN_STATUS_CODE..=MAX_STATUS_CODE).contains(&status_code) {
        return Err(RejectError::StatusCodeOutOfRange { status_code });
    }
    check_reason_phrase(description).map_err(|_| RejectError::InvalidDescription)?;
    let encoded = utf8_percent_encode(description, DESCRIPTION_ENCODE_SET);
    Ok(format!(
        "{accept_address}&{STATUS_CODE_PARAM}={status_code}&{STATUS_DESCRIPTION_PARAM}={encoded}"
    ))
}

/// What a rejecting listener told the relay to report to the sender (protocol §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status the sender's upgrade fails with.
    pub status_code: u16,
    /// The reason phrase, form-decoded (`+` and `%20` are both a space). `None` when absent.
    pub status_description: Option<String>,
}

/// Reads a rejection from the query of an accept-rendezvous handshake (the text after `?`).
/// Returns `None` when the query has no `sb-hc-statusCode`, i.e. the listener is accepting.
pub fn parse_rejection(query: &str) -> Result<Option<Rejection>, RejectError> {
    let Some(code) = single_param(query, STATUS_CODE_PARAM)? else {
        return Ok(None);
    };
    let status_code = parse_status_code(&code)?;
    let status_description = single_param(query, STATUS_DESCRIPTION_PARAM)?;
    if let Some(description) = &status_description {
        check_reason_phrase(description).map_err(|_| RejectError::InvalidDescription)?;
    }
    Ok(Some(Rejection {
        status_code,
        status_description,
    }))
}

fn single_param(query: &str, name: &'static str) -> Result<Option<String>, RejectError> {
    let mut values = get_query_params(query, name).into_iter();
    let first = values.next().map(|value| value.into_owned());
    if values.next().is_some() {
        return Err(RejectError::RepeatedParameter { name });
    }
    Ok(first)
}

/// Exactly three ASCII digits within 100–999.
fn parse_status_code(text: &str) -> Result<u16, RejectError> {
    let invalid = || RejectError::InvalidStatusCode {
        value: text.to_owned(),
    };
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let code: u16 = text.parse().map_err(|_| invalid())?;
    if code < MIN_STATUS_CODE {
        return Err(invalid());
    }
    Ok(code)
}

/// Why a reject URL cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectError {
    /// The accept address has no query, so appending `&…` would not make parameters; service
    /// addresses always carry `sb-hc-action=accept` (protocol §4.3).
    AddressWithoutQuery,
    /// The status to report is not a three-digit code (protocol §2.2: `{3-digit}`).
    StatusCodeOutOfRange { status_code: u16 },
    /// `sb-hc-statusCode` is not three digits within 100–999.
    InvalidStatusCode { value: String },
    /// `sb-hc-statusCode` or `sb-hc-statusDescription` appears more than once.
    RepeatedParameter { name: &'static str },
    /// The description contains a control character, which could split the sender's status line.
    InvalidDescription,
}

impl fmt::Display for RejectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddressWithoutQuery => f.write_str("accept address has no query to extend"),
            Self::StatusCodeOutOfRange { status_code } => write!(
                f,
                "{STATUS_CODE_PARAM} {status_code} is outside {MIN_STATUS_CODE}-{MAX_STATUS_CODE}"
            ),
            Self::InvalidStatusCode { value } => write!(
                f,
                "{STATUS_CODE_PARAM}={value:?} is not a status code {MIN_STATUS_CODE}-{MAX_STATUS_CODE}"
            ),
            Self::RepeatedParameter { name } => write!(f, "{name} appears more than once"),
            Self::InvalidDescription => {
                write!(f, "{STATUS_DESCRIPTION_PARAM} contains a control character")
            }
        }
    }
}

impl std::error::Error for RejectError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str =
        "wss://g18-prod-am3-003-sb.servicebus.windows.net:443/$hc/hyco/sap?client=42&sb-hc-action=accept&sb-hc-id=9f1c_G18";

    #[test]
    fn reject_url_appends_status_and_encoded_description_to_the_address() {
        assert_eq!(
            reject_url(ADDRESS, 400, "Rejected by user code").unwrap(),
            format!("{ADDRESS}&sb-hc-statusCode=400&sb-hc-statusDescription=Rejected%20by%20user%20code")
        );
    }

    #[test]
    fn reject_url_encodes_reserved_and_non_ascii_characters() {
        let url = reject_url("ws://r/$hc/h?sb-hc-action=accept", 403, "a&b=c+d/é~_.-").unwrap();
        assert_eq!(
            url,
            "ws://r/$hc/h?sb-hc-action=accept&sb-hc-statusCode=403&sb-hc-statusDescription=a%26b%3Dc%2Bd%2F%C3%A9~_.-"
        );
    }

    #[test]
    fn reject_url_round_trips_through_parse_rejection() {
        let description = "Upstream 10.0.0.1:3300 refused: 50% & more";
        let url = reject_url(ADDRESS, 502, description).unwrap();
        let query = url.split_once('?').unwrap().1;
        assert_eq!(
            parse_rejection(query),
            Ok(Some(Rejection {
                status_code: 502,
                status_description: Some(description.into())
            }))
        );
    }

    #[test]
    fn reject_url_needs_a_query_in_the_address() {
        assert_eq!(
            reject_url("wss://g/$hc/hyco", 400, "x"),
            Err(RejectError::AddressWithoutQuery)
        );
    }

    #[test]
    fn reject_url_needs_a_three_digit_status() {
        for status_code in [0, 99, 1000, u16::MAX] {
            assert_eq!(
                reject_url(ADDRESS, status_code, "x"),
                Err(RejectError::StatusCodeOutOfRange { status_code })
            );
        }
        assert!(reject_url(ADDRESS, 100, "x").is_ok());
        assert!(reject_url(ADDRESS, 999, "x").is_ok());
    }

    #[test]
    fn reject_url_refuses_control_characters_in_the_description() {
        assert_eq!(
            reject_url(ADDRESS, 400, "bad\r\nX-Evil: 1"),
            Err(RejectError::InvalidDescription)
        );
    }

    #[test]
    fn parse_rejection_without_status_code_is_an_accept() {
        assert_eq!(parse_rejection("sb-hc-action=accept&sb-hc-id=1"), Ok(None));
        assert_eq!(
            parse_rejection("sb-hc-action=accept&sb-hc-statusDescription=x"),
            Ok(None)
        );
    }

    #[test]
    fn parse_rejection_form_decodes_plus_and_percent_twenty() {
        for encoded in ["Rejected+by+user+code", "Rejected%20by%20user%20code"] {
            let query = format!(
                "sb-hc-action=accept&sb-hc-statusCode=400&sb-hc-statusDescription={encoded}"
            );
            assert_eq!(
                parse_rejection(&query),
                Ok(Some(Rejection {
                    status_code: 400,
                    status_description: Some("Rejected by user code".into())
                })),
                "{encoded}"
            );
        }
    }

    #[test]
    fn parse_rejection_without_description_has_none() {
        assert_eq!(
            parse_rejection("sb-hc-statusCode=401"),
            Ok(Some(Rejection {
                status_code: 401,
                status_description: None
            }))
        );
    }

    #[test]
    fn parse_rejection_with_a_malformed_status_code_is_invalid() {
        let cases = [
            ("", ""),
            ("40", "40"),
            ("4000", "4000"),
            ("abc", "abc"),
            ("099", "099"),
            ("+40", " 40"),
            ("400%20", "400 "),
            ("%34%30%30%00", "400\0"),
        ];
        for (encoded, decoded) in cases {
            let query = format!("sb-hc-statusCode={encoded}");
            assert_eq!(
                parse_rejection(&query),
                Err(RejectError::InvalidStatusCode {
                    value: decoded.into()
                }),
                "{query}"
            );
        }
    }

    #[test]
    fn parse_rejection_with_repeated_parameters_is_refused() {
        assert_eq!(
            parse_rejection("sb-hc-statusCode=400&sb-hc-statusCode=401"),
            Err(RejectError::RepeatedParameter {
                name: STATUS_CODE_PARAM
            })
        );
        assert_eq!(
            parse_rejection(
                "sb-hc-statusCode=400&sb-hc-statusDescription=a&sb-hc-statusDescription=b"
            ),
            Err(RejectError::RepeatedParameter {
                name: STATUS_DESCRIPTION_PARAM
            })
        );
    }

    #[test]
    fn parse_rejection_refuses_control_characters_in_the_description() {
        assert_eq!(
            parse_rejection("sb-hc-statusCode=400&sb-hc-statusDescription=a%0D%0AX-Evil:+1"),
            Err(RejectError::InvalidDescription)
        );
    }

    #[test]
    fn reject_errors_name_the_parameter() {
        assert_eq!(
            RejectError::InvalidStatusCode {
                value: "abc".into()
            }
            .to_string(),
            r#"sb-hc-statusCode="abc" is not a status code 100-999"#
        );
        assert_eq!(
            RejectError::StatusCodeOutOfRange { status_code: 42 }.to_string(),
            "sb-hc-statusCode 42 is outside 100-999"
        );
        assert_eq!(
            RejectError::RepeatedParameter {
                name: STATUS_CODE_PARAM
            }
            .to_string(),
            "sb-hc-statusCode appears more than once"
        );
        assert_eq!(
            RejectError::InvalidDescription.to_string(),
            "sb-hc-statusDescription contains a control character"
        );
        assert_eq!(
            RejectError::AddressWithoutQuery.to_string(),
            "accept address has no query to extend"
        );
    }
}
