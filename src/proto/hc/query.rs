//! The `sb-hc-*` query parameters: their names (protocol §2.3), stripping them from what the
//! listener sees (protocol §2.4), reading one parameter with form decoding (protocol §5.2) and the
//! `sb-hc-action` verb (protocol §2.3).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use url::form_urlencoded;

/// The prefix the protocol reserves for its query parameters (protocol §2.3).
pub const SB_HC_PREFIX: &str = "sb-hc-";
/// Which channel a WebSocket URL opens (protocol §2.3).
pub const ACTION_PARAM: &str = "sb-hc-action";
/// The client-chosen tracking id (protocol §2.3).
pub const ID_PARAM: &str = "sb-hc-id";
/// The URL-encoded SAS token, alternative to the `ServiceBusAuthorization` header (protocol §3.1).
pub const TOKEN_PARAM: &str = "sb-hc-token";
/// The status a rejecting listener reports to the sender (protocol §5.2).
pub const STATUS_CODE_PARAM: &str = "sb-hc-statusCode";
/// The reason a rejecting listener reports to the sender, form-encoded (protocol §5.2).
pub const STATUS_DESCRIPTION_PARAM: &str = "sb-hc-statusDescription";

/// Removes every `sb-hc-` parameter from a query, exactly as protocol §2.4 pins it down.
///
/// `query` is the text after `?`, without the `?`. An element (text between `&`s) is removed
/// when it has the form `key=value` and `key` starts with `sb-hc-`, compared ASCII
/// case-insensitively on the percent-decoded key (so every spelling a reader would take for
/// an `sb-hc-` parameter, e.g. `sb%2Dhc-token`, is removed). Elements without `=` survive, and
/// so does everything else: order, duplicates, empty elements, percent-encoding. Returns `None`
/// when no element survives, meaning the `?` must disappear too; an empty query has one empty
/// element, which survives. Borrows `query` when nothing is removed.
pub fn strip_sb_hc_params(query: &str) -> Option<Cow<'_, str>> {
    if !query.split('&').any(is_sb_hc_element) {
        return Some(Cow::Borrowed(query));
    }
    let mut kept = String::with_capacity(query.len());
    let mut any_kept = false;
    for element in query
        .split('&')
        .filter(|element| !is_sb_hc_element(element))
    {
        if any_kept {
            kept.push('&');
        }
        kept.push_str(element);
        any_kept = true;
    }
    any_kept.then_some(Cow::Owned(kept))
}

/// Applies [`strip_sb_hc_params`] to the query of a request-target (`path[?query]`), dropping
/// the `?` when nothing survives. Borrows `target` when nothing is removed.
pub fn strip_sb_hc_params_from_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    match strip_sb_hc_params(query) {
        Some(Cow::Borrowed(_)) => Cow::Borrowed(target),
        Some(Cow::Owned(kept)) => Cow::Owned(format!("{path}?{kept}")),
        None => Cow::Borrowed(path),
    }
}

fn is_sb_hc_element(element: &str) -> bool {
    let Some((key, _value)) = element.split_once('=') else {
        return false;
    };
    // The key is percent-decoded first, as every reader of these parameters decodes it:
    // `sb%2dhc%2dtoken` is read as the token, so it must be removed like `sb-hc-token`.
    let mut decoded = percent_decode_str(key);
    SB_HC_PREFIX.bytes().all(|want| {
        decoded
            .next()
            .is_some_and(|got| got.eq_ignore_ascii_case(&want))
    })
}

/// The value of the first parameter called `name` in `query` (the text after `?`), with
/// `application/x-www-form-urlencoded` decoding: `+` is a space and percent escapes are decoded
/// (protocol §5.2: .NET encodes spaces as `+`, other clients as `%20`). Names are compared ASCII
/// case-insensitively after decoding. Bytes that do not decode to UTF-8 become U+FFFD.
pub fn get_query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Every value of the parameters called `name`, decoded as by [`get_query_param`].
pub fn get_query_params<'q>(query: &'q str, name: &str) -> Vec<Cow<'q, str>> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .collect()
}

/// The `sb-hc-action` verbs (protocol §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A listener's control channel.
    Listen,
    /// A sender's WebSocket.
    Connect,
    /// A listener's accept rendezvous (or reject handshake, protocol §5.2).
    Accept,
    /// A listener's request rendezvous.
    Request,
}

impl Action {
    /// The verb as it appears in the query.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Connect => "connect",
            Self::Accept => "accept",
            Self::Request => "request",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = QueryError;

    /// Matches the verbs exactly (every SDK sends them in lower case).
    fn from_str(value: &str) -> Result<Self, QueryError> {
        match value {
            "listen" => Ok(Self::Listen),
            "connect" => Ok(Self::Connect),
            "accept" => Ok(Self::Accept),
            "request" => Ok(Self::Request),
            _ => Err(QueryError::UnknownAction {
                value: value.to_owned(),
            }),
        }
    }
}

/// Reads the `sb-hc-action` parameter of a WebSocket URL's query (protocol §2.3: required).
pub fn parse_action(query: &str) -> Result<Action, QueryError> {
    let mut values = get_query_params(query, ACTION_PARAM).into_iter();
    let Some(value) = values.next() else {
        return Err(QueryError::MissingAction);
    };
    if values.next().is_some() {
        return Err(QueryError::RepeatedAction);
    }
    value.parse()
}

/// Why a query's `sb-hc-action` is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The query has no `sb-hc-action` parameter (protocol §2.3: it is required).
    MissingAction,
    /// The query has `sb-hc-action` more than once, so the verb is ambiguous.
    RepeatedAction,
    /// `sb-hc-action` is not one of `listen`, `connect`, `accept`, `request`.
    UnknownAction { value: String },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingAction => write!(f, "the query has no {ACTION_PARAM} parameter"),
            Self::RepeatedAction => {
                write!(f, "the query has more than one {ACTION_PARAM} parameter")
            }
            Self::UnknownAction { value } => write!(
                f,
                "{ACTION_PARAM}={value:?} is not one of listen, connect, accept, request"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the rule to a sender query written with its `?`, as protocol §2.4's table is.
    fn listener_sees(sender_query: &str) -> String {
        let query = sender_query
            .strip_prefix('?')
            .expect("table rows start with ?");
        match strip_sb_hc_params(query) {
            Some(kept) => format!("?{kept}"),
            None => String::new(),
        }
    }

    #[test]
    fn strip_follows_the_table_of_spec_2_4() {
        let table = [
            ("?a=1&a=2", "?a=1&a=2"),
            ("?&&&", "?&&&"),
            ("?&foo=bar", "?&foo=bar"),
            ("?sb-hc-id=1", ""),
            ("?sb-hc-id=1&custom=value", "?custom=value"),
            ("?custom=value&sb-hc-id=1", "?custom=value"),
            ("?sb-hc-undefined", "?sb-hc-undefined"),
            ("?sb-hc-whatever=", ""),
            ("?sb-hc-whatever=&foo=bar", "?foo=bar"),
            ("?%2f%3a%3d%26", "?%2f%3a%3d%26"),
        ];
        for (sender, listener) in table {
            assert_eq!(listener_sees(sender), listener, "sender query {sender}");
        }
    }

    #[test]
    fn strip_compares_the_prefix_case_insensitively() {
        assert_eq!(listener_sees("?SB-HC-ID=1&Sb-Hc-Token=x&a=b"), "?a=b");
    }

    #[test]
    fn strip_decodes_the_key_before_comparing() {
        for spelling in [
            "sb%2Dhc-id",
            "sb%2dhc%2dtoken",
            "%73%62%2D%68%63%2Dtoken",
            "SB%2DHC%2DTOKEN",
            "sb-hc%2daction",
        ] {
            assert_eq!(
                listener_sees(&format!("?a=1&{spelling}=x&b=2")),
                "?a=1&b=2",
                "{spelling}"
            );
        }
        assert_eq!(listener_sees("?sb-hc=1&sb-h=2"), "?sb-hc=1&sb-h=2");
        assert_eq!(listener_sees("?sb%2Dhc=1&sb%2=2"), "?sb%2Dhc=1&sb%2=2");
    }

    #[test]
    fn every_spelling_the_token_reader_accepts_is_stripped() {
        for spelling in ["sb%2dhc%2dtoken", "Sb-Hc-Token", "sb-hc%2Dtoken"] {
            let query = format!("{spelling}=SharedAccessSignature+sr%3Dx&keep=1");
            assert!(get_query_param(&query, TOKEN_PARAM).is_some(), "{spelling}");
            assert_eq!(
                strip_sb_hc_params(&query).as_deref(),
                Some("keep=1"),
                "{spelling}"
            );
        }
    }

    #[test]
    fn strip_keeps_empty_elements_around_removed_ones() {
        assert_eq!(listener_sees("?&sb-hc-id=1&"), "?&");
        assert_eq!(
            listener_sees("?a=1&sb-hc-action=connect&&b=2&sb-hc-id=x"),
            "?a=1&&b=2"
        );
    }

    #[test]
    fn strip_treats_only_the_first_equals_as_the_separator() {
        assert_eq!(
            listener_sees("?sb-hc-token=a=b&x=sb-hc-id=1"),
            "?x=sb-hc-id=1"
        );
    }

    #[test]
    fn strip_keeps_an_empty_query() {
        assert_eq!(listener_sees("?"), "?");
    }

    #[test]
    fn strip_borrows_when_nothing_is_removed() {
        assert!(matches!(
            strip_sb_hc_params("a=1&b=2"),
            Some(Cow::Borrowed("a=1&b=2"))
        ));
    }

    #[test]
    fn strip_from_target_handles_path_and_query() {
        let cases = [
            (
                "/hyco/abc/def?myarg=value&sb-hc-token=t",
                "/hyco/abc/def?myarg=value",
            ),
            ("/hyco?sb-hc-token=t", "/hyco"),
            ("/hyco", "/hyco"),
            ("/hyco?", "/hyco?"),
            ("/hyco?a=1?b=2&sb-hc-id=3", "/hyco?a=1?b=2"),
        ];
        for (target, expected) in cases {
            assert_eq!(strip_sb_hc_params_from_target(target), expected, "{target}");
        }
    }

    #[test]
    fn get_query_param_form_decodes_plus_and_percent() {
        let query = "sb-hc-action=accept&sb-hc-statusCode=401&sb-hc-statusDescription=Not+allowed%3A%20go%2Faway";
        assert_eq!(
            get_query_param(query, STATUS_DESCRIPTION_PARAM).as_deref(),
            Some("Not allowed: go/away")
        );
        assert_eq!(
            get_query_param(query, STATUS_CODE_PARAM).as_deref(),
            Some("401")
        );
    }

    #[test]
    fn get_query_param_decodes_utf8_and_replaces_invalid_bytes() {
        assert_eq!(
            get_query_param("d=gr%C3%BC%C3%9Fe", "d").as_deref(),
            Some("grüße")
        );
        assert_eq!(get_query_param("d=%FF", "d").as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn get_query_param_matches_names_case_insensitively_and_returns_the_first() {
        assert_eq!(
            get_query_param(
                "SB-HC-STATUSCODE=500&sb-hc-statusCode=400",
                STATUS_CODE_PARAM
            )
            .as_deref(),
            Some("500")
        );
        assert_eq!(get_query_param("a=1", "b"), None);
        assert_eq!(get_query_param("flag&b=2", "flag").as_deref(), Some(""));
    }

    #[test]
    fn get_query_params_returns_every_value_in_order() {
        let values = get_query_params("a=1&b=2&A=3", "a");
        assert_eq!(values, ["1", "3"]);
    }

    #[test]
    fn parse_action_reads_each_verb() {
        let cases = [
            ("sb-hc-action=listen", Action::Listen),
            ("x=1&sb-hc-action=connect&sb-hc-id=7", Action::Connect),
            ("sb-hc-action=accept&sb-hc-id=a_G1", Action::Accept),
            ("sb-hc-action=request", Action::Request),
        ];
        for (query, action) in cases {
            assert_eq!(parse_action(query), Ok(action), "{query}");
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(action.to_string(), action.as_str());
        }
    }

    #[test]
    fn parse_action_without_the_parameter_is_missing() {
        assert_eq!(parse_action(""), Err(QueryError::MissingAction));
        assert_eq!(
            parse_action("sb-hc-id=1&action=listen"),
            Err(QueryError::MissingAction)
        );
    }

    #[test]
    fn parse_action_with_an_unknown_verb_is_unknown() {
        for value in ["", "Listen", "send", "listen "] {
            let query = format!("sb-hc-action={}", value.replace(' ', "+"));
            assert_eq!(
                parse_action(&query),
                Err(QueryError::UnknownAction {
                    value: value.to_owned()
                }),
                "{query}"
            );
        }
    }

    #[test]
    fn parse_action_given_twice_is_repeated() {
        assert_eq!(
            parse_action("sb-hc-action=listen&sb-hc-action=listen"),
            Err(QueryError::RepeatedAction)
        );
    }

    #[test]
    fn query_errors_name_the_parameter() {
        assert_eq!(
            QueryError::UnknownAction {
                value: "send".into()
            }
            .to_string(),
            r#"sb-hc-action="send" is not one of listen, connect, accept, request"#
        );
        assert_eq!(
            QueryError::MissingAction.to_string(),
            "the query has no sb-hc-action parameter"
        );
        assert_eq!(
            QueryError::RepeatedAction.to_string(),
            "the query has more than one sb-hc-action parameter"
        );
    }
}
