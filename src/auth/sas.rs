//! Shared Access Signature tokens: signing and parsing (protocol §3.2–§3.4, test vectors §3.6).
//!
//! ```text
//! SharedAccessSignature sr=<E(resource-uri)>&sig=<E(base64(hmac))>&se=<expiry>&skn=<key-name>
//! string_to_sign = <sr exactly as in the token> + "\n" + <se exactly as in the token>
//! hmac           = HMAC-SHA256(key = UTF-8 bytes of the key text, NOT Base64-decoded)
//! ```
//!
//! `E` is `encodeURIComponent` (upper-case hex), which is what the Node SDK emits. Everything here
//! is pure: the expiry is passed in, no clock is read.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::hmac;

use crate::secret::Secret;

/// The token's scheme word; one space separates it from the fields (protocol §3.2).
pub const PREFIX: &str = "SharedAccessSignature";

/// What a token put into a query string as a whole starts with (protocol §3.1, §11 item 14).
const QUERY_ENCODED_PREFIX: &str = "SharedAccessSignature%20";

/// The characters `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Percent-encodes like JavaScript's `encodeURIComponent` (upper-case hex).
pub fn encode_uri_component(text: &str) -> String {
    utf8_percent_encode(text, URI_COMPONENT).to_string()
}

/// [`encode_uri_component`], borrowing `text` when no character needs encoding.
pub fn encode_uri_component_borrowed(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, URI_COMPONENT).into()
}

/// The resource URI the .NET `TokenProvider` signs for an entity (protocol §3.4, §8.4):
/// `http://{host lower-cased}/{entity_path}/` — scheme forced to `http`, no port, trailing `/`
/// ensured. `namespace_host` is a bare host name (no port); a leading `/` on `entity_path` is
/// dropped. An empty `entity_path` gives the namespace-wide `http://{host}/`.
pub fn dotnet_resource_uri(namespace_host: &str, entity_path: &str) -> String {
    let path = entity_path.trim_start_matches('/');
    let mut uri = format!("http://{}/{path}", namespace_host.to_ascii_lowercase());
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The bytes the HMAC covers: the encoded `sr` text, LF, the `se` text (protocol §3.3).
pub fn string_to_sign(sr_raw: &str, se_raw: &str) -> String {
    format!("{sr_raw}\n{se_raw}")
}

/// The HMAC key for a SAS key: the UTF-8 bytes of the key text, not Base64-decoded (protocol §3.3).
pub fn hmac_key(key: &Secret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes())
}

/// Mints a token for `resource_uri` that expires at `expiry_unix_secs` (protocol §3.2, §3.3).
///
/// `resource_uri` is the plain URI (it is encoded here); `key_name` is encoded too, which leaves
/// the usual `[A-Za-z0-9._-]` rule names unchanged.
pub fn sign_token(
    resource_uri: &str,
    key_name: &str,
    key: &Secret,
    expiry_unix_secs: u64,
) -> Secret {
    let sr = encode_uri_component(resource_uri);
    let se = expiry_unix_secs.to_string();
    let tag = hmac::sign(&hmac_key(key), string_to_sign(&sr, &se).as_bytes());
    let sig = encode_uri_component(&BASE64.encode(tag.as_ref()));
    let skn = encode_uri_component(key_name);
    Secret::new(format!("{PREFIX} sr={sr}&sig={sig}&se={se}&skn={skn}"))
}

/// Encodes a whole token once more for the `sb-hc-token` query parameter (protocol §3.1, §3.6).
pub fn encode_query_token(token: &Secret) -> Secret {
    Secret::new(encode_uri_component(token.expose()))
}

/// Undoes [`encode_query_token`] when needed: a value starting with `SharedAccessSignature%20`
/// (a raw `sb-hc-token` query value, or a `renewToken` sent URL-encoded, protocol §11 item 14) is
/// percent-decoded once; any other value is returned unchanged for [`parse_token`] to judge.
pub fn decode_query_token(value: &str) -> Result<Cow<'_, str>, TokenError> {
    if !starts_with_ignore_ascii_case(value, QUERY_ENCODED_PREFIX) {
        return Ok(Cow::Borrowed(value));
    }
    percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| TokenError::QueryValueNotUtf8)
}

/// The four fields of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    Sr,
    Sig,
    Se,
    Skn,
}

impl TokenField {
    const ALL: [TokenField; 4] = [
        TokenField::Sr,
        TokenField::Sig,
        TokenField::Se,
        TokenField::Skn,
    ];

    /// The field name as written in tokens.
    pub fn name(self) -> &'static str {
        match self {
            TokenField::Sr => "sr",
            TokenField::Sig => "sig",
            TokenField::Se => "se",
            TokenField::Skn => "skn",
        }
    }

    /// Position in [`TokenField::ALL`].
    fn slot(self) -> usize {
        match self {
            TokenField::Sr => 0,
            TokenField::Sig => 1,
            TokenField::Se => 2,
            TokenField::Skn => 3,
        }
    }

    fn lookup(name: &str) -> Option<TokenField> {
        TokenField::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for TokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a token could not be parsed. No variant carries token text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The token does not start with `SharedAccessSignature ` (case-insensitive, one space).
    MissingPrefix,
    /// A non-empty `&`-separated field has no `=`; `index` counts fields from 0.
    FieldWithoutEquals { index: usize },
    /// A field appears twice (names compare case-insensitively).
    DuplicateField { field: TokenField },
    /// A field is absent.
    MissingField { field: TokenField },
    /// A field is present with an empty value.
    EmptyField { field: TokenField },
    /// A field's percent-decoded value is not UTF-8.
    FieldNotUtf8 { field: TokenField },
    /// `se` contains something other than ASCII digits.
    ExpiryNotDecimal,
    /// `se` does not fit in 64 bits.
    ExpiryOutOfRange,
    /// A query-encoded token decodes to bytes that are not UTF-8.
    QueryValueNotUtf8,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPrefix => write!(f, "the token does not start with '{PREFIX} '"),
            Self::FieldWithoutEquals { index } => write!(
                f,
                "token field {} (counting '&'-separated fields from 1) has no '='",
                index.saturating_add(1)
            ),
            Self::DuplicateField { field } => {
                write!(f, "token field {field} appears more than once")
            }
            Self::MissingField { field } => write!(f, "token field {field} is missing"),
            Self::EmptyField { field } => write!(f, "token field {field} is empty"),
            Self::FieldNotUtf8 { field } => {
                write!(f, "token field {field} does not percent-decode to UTF-8")
            }
            Self::ExpiryNotDecimal => f.write_str("token field se is not a decimal number"),
            Self::ExpiryOutOfRange => f.write_str("token field se does not fit in 64 bits"),
            Self::QueryValueNotUtf8 => {
                f.write_str("the URL-encoded token does not percent-decode to UTF-8")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// A token split into its fields. Borrowed parts point into the token text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    sr_raw: &'a str,
    resource: String,
    sig: Secret,
    se_raw: &'a str,
    expiry: u64,
    key_name: String,
}

impl<'a> ParsedToken<'a> {
    /// The `sr` value exactly as received (still percent-encoded): the signed bytes (protocol
    /// §3.3).
    pub fn sr_raw(&self) -> &'a str {
        self.sr_raw
    }

    /// The `sr` value percent-decoded once: the audience URI (protocol §3.4).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The `sig` value percent-decoded: Base64 text of the HMAC. Part of the credential.
    pub fn signature(&self) -> &Secret {
        &self.sig
    }

    /// The `se` value exactly as received (decimal digits): the signed bytes (protocol §3.3).
    pub fn se_raw(&self) -> &'a str {
        self.se_raw
    }

    /// The expiry, seconds since the Unix epoch.
    pub fn expiry(&self) -> u64 {
        self.expiry
    }

    /// The `skn` value percent-decoded: the name of the shared access rule.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// What the signer MACed for this token: [`string_to_sign`] over the raw `sr` and `se`.
    pub fn string_to_sign(&self) -> String {
        string_to_sign(self.sr_raw, self.se_raw)
    }
}

/// Parses a token as it appears in `ServiceBusAuthorization` or `renewToken` (protocol §3.2).
///
/// Field order is free, names are case-insensitive, empty `&&` fields are skipped and unknown
/// fields ignored (as the .NET parser does). `sig` and `skn` are percent-decoded (`+` stays `+`:
/// it is a Base64 character, not a space); `sr` is kept raw for the MAC and also decoded.
pub fn parse_token(token: &str) -> Result<ParsedToken<'_>, TokenError> {
    let fields = strip_prefix_ignore_ascii_case(token, PREFIX)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(TokenError::MissingPrefix)?;
    let mut values: [Option<&str>; 4] = [None; 4];
    for (index, field) in fields.split('&').enumerate() {
        if field.is_empty() {
            continue;
        }
        let (name, value) = field
            .split_once('=')
            .ok_or(TokenError::FieldWithoutEquals { index })?;
        let Some(known) = TokenField::lookup(name) else {
            continue;
        };
        let slot = &mut values[known.slot()];
        if slot.is_some() {
            return Err(TokenError::DuplicateField { field: known });
        }
        *slot = Some(value);
    }
    let [sr_raw, sig, se_raw, skn] = TokenField::ALL.map(|field| match values[field.slot()] {
        None => Err(TokenError::MissingField { field }),
        Some("") => Err(TokenError::EmptyField { field }),
        Some(value) => Ok(value),
    });
    let (sr_raw, sig, se_raw, skn) = (sr_raw?, sig?, se_raw?, skn?);
    Ok(ParsedToken {
        sr_raw,
        resource: decode_field(sr_raw, TokenField::Sr)?.into_owned(),
        sig: Secret::new(decode_field(sig, TokenField::Sig)?),
        se_raw,
        expiry: parse_expiry(se_raw)?,
        key_name: decode_field(skn, TokenField::Skn)?.into_owned(),
    })
}

fn decode_field(value: &str, field: TokenField) -> Result<Cow<'_, str>, TokenError> {
    percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| TokenError::FieldNotUtf8 { field })
}

fn parse_expiry(se_raw: &str) -> Result<u64, TokenError> {
    if !se_raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::ExpiryNotDecimal);
    }
    se_raw.parse().map_err(|_| TokenError::ExpiryOutOfRange)
}

fn strip_prefix_ignore_ascii_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    if starts_with_ignore_ascii_case(text, prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn starts_with_ignore_ascii_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protocol §3.6.
    const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
    const SKN: &str = "RootManageSharedAccessKey";
    const SE: u64 = 1_700_000_000;
    const TOKEN: &str = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&se=1700000000&skn=RootManageSharedAccessKey";
    const QUERY_TOKEN: &str = "SharedAccessSignature%20sr%3Dhttp%253A%252F%252Fcontoso.servicebus.windows.net%252Fhyco%26sig%3Dbczrn9F3GUqyo6XWPPUhTBuR%252BL0oAezp6WADvWcO0Xg%253D%26se%3D1700000000%26skn%3DRootManageSharedAccessKey";

    fn key() -> Secret {
        Secret::new(KEY)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Base64 of the HMAC over `sr` (as written) + LF + `se`, with `key_bytes` as the HMAC key.
    fn b64_mac(key_bytes: &[u8], sr: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key_bytes);
        let tag = hmac::sign(&key, string_to_sign(sr, &SE.to_string()).as_bytes());
        BASE64.encode(tag.as_ref())
    }

    fn field(token: &Secret, name: &str) -> String {
        let parsed = parse_token(token.expose()).unwrap();
        match name {
            "sr" => parsed.sr_raw().to_owned(),
            "sig" => parsed.signature().expose().to_owned(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn main_vector_string_to_sign_hex() {
        let sts = string_to_sign(
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco",
            "1700000000",
        );
        assert_eq!(
            hex(sts.as_bytes()),
            concat!(
                "68747470253341253246253246636f6e746f736f2e736572766963656275732e77696e646f77732e6e6574",
                "2532466879636f0a31373030303030303030"
            )
        );
    }

    #[test]
    fn main_vector_hmac_and_base64() {
        let sts = string_to_sign(
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco",
            "1700000000",
        );
        let tag = hmac::sign(&hmac_key(&key()), sts.as_bytes());
        assert_eq!(
            hex(tag.as_ref()),
            "6dcceb9fd177194ab2a3a5d63cf5214c1b91f8bd2801ece9e96003bd670ed178"
        );
        assert_eq!(
            BASE64.encode(tag.as_ref()),
            "bczrn9F3GUqyo6XWPPUhTBuR+L0oAezp6WADvWcO0Xg="
        );
        assert_eq!(
            encode_uri_component("bczrn9F3GUqyo6XWPPUhTBuR+L0oAezp6WADvWcO0Xg="),
            "bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D"
        );
    }

    #[test]
    fn main_vector_token() {
        let token = sign_token(
            "http://contoso.servicebus.windows.net/hyco",
            SKN,
            &key(),
            SE,
        );
        assert_eq!(token.expose(), TOKEN);
    }

    #[test]
    fn main_vector_query_encoded_form() {
        let token = sign_token(
            "http://contoso.servicebus.windows.net/hyco",
            SKN,
            &key(),
            SE,
        );
        assert_eq!(encode_query_token(&token).expose(), QUERY_TOKEN);
        assert_eq!(decode_query_token(QUERY_TOKEN).unwrap(), TOKEN);
    }

    #[test]
    fn more_vectors_dotnet_style() {
        let token = sign_token(
            "http://contoso.servicebus.windows.net/hyco/",
            SKN,
            &key(),
            SE,
        );
        assert_eq!(
            field(&token, "sr"),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F"
        );
        assert_eq!(
            field(&token, "sig"),
            "0jj6czaBfUJ/AQrXCZtyVwOeZrEzDmkUcMHV53wNYWk="
        );
        assert!(token
            .expose()
            .contains("&sig=0jj6czaBfUJ%2FAQrXCZtyVwOeZrEzDmkUcMHV53wNYWk%3D&"));
    }

    #[test]
    fn more_vectors_namespace_wide() {
        let token = sign_token("http://contoso.servicebus.windows.net/", SKN, &key(), SE);
        assert_eq!(
            field(&token, "sr"),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2F"
        );
        assert_eq!(
            field(&token, "sig"),
            "lQldsJo/SyrwknJaWkhorUO+S37G3rAvoFtp8HL9ZZM="
        );
    }

    #[test]
    fn more_vectors_node_listen_uri_with_port() {
        let token = sign_token(
            "http://contoso.servicebus.windows.net:443/hyco",
            SKN,
            &key(),
            SE,
        );
        assert_eq!(
            field(&token, "sr"),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%3A443%2Fhyco"
        );
        assert_eq!(
            field(&token, "sig"),
            "yS7mbIm4VQBsZGSgYKopE7YsmryAOnHhbqmS16T3hBY="
        );
    }

    #[test]
    fn more_vectors_lower_case_hex_is_signed_as_written() {
        let sr = "http%3a%2f%2fcontoso.servicebus.windows.net%2fhyco%2f";
        let sig = b64_mac(KEY.as_bytes(), sr);
        assert_eq!(sig, "P2O67+XjNdQ278qXdW7CSwyg6g9oOwHhb0OXfNbUpIw=");
        assert_ne!(sig, "0jj6czaBfUJ/AQrXCZtyVwOeZrEzDmkUcMHV53wNYWk=");
    }

    #[test]
    fn more_vectors_base64_decoded_key_gives_a_different_signature() {
        let decoded_key = BASE64.decode(KEY).unwrap();
        let wrong = b64_mac(
            &decoded_key,
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco",
        );
        assert_eq!(wrong, "jpkBnRXIiKLw4c9NUcBqg2kKGIJMukvjEQAFix8yY00=");
        let token = sign_token(
            "http://contoso.servicebus.windows.net/hyco",
            SKN,
            &key(),
            SE,
        );
        assert_ne!(field(&token, "sig"), wrong);
    }

    #[test]
    fn encode_uri_component_keeps_exactly_the_unreserved_marks() {
        assert_eq!(encode_uri_component("AZaz09-_.!~*'()"), "AZaz09-_.!~*'()");
        assert_eq!(
            encode_uri_component(" /:?#[]@$&+,;=%\"<>\\^`{|}é"),
            "%20%2F%3A%3F%23%5B%5D%40%24%26%2B%2C%3B%3D%25%22%3C%3E%5C%5E%60%7B%7C%7D%C3%A9"
        );
    }

    #[test]
    fn dotnet_resource_uri_forces_http_lower_case_host_and_trailing_slash() {
        assert_eq!(
            dotnet_resource_uri("Contoso.ServiceBus.Windows.Net", "hyco"),
            "http://contoso.servicebus.windows.net/hyco/"
        );
        assert_eq!(
            dotnet_resource_uri("localhost", "a/B/c"),
            "http://localhost/a/B/c/"
        );
        assert_eq!(
            dotnet_resource_uri("localhost", "/hyco/"),
            "http://localhost/hyco/"
        );
        assert_eq!(dotnet_resource_uri("localhost", ""), "http://localhost/");
    }

    #[test]
    fn dotnet_resource_uri_token_matches_the_dotnet_vector() {
        let uri = dotnet_resource_uri("contoso.servicebus.windows.net", "hyco");
        let token = sign_token(&uri, SKN, &key(), SE);
        assert_eq!(
            field(&token, "sig"),
            "0jj6czaBfUJ/AQrXCZtyVwOeZrEzDmkUcMHV53wNYWk="
        );
    }

    #[test]
    fn key_name_is_encoded() {
        let token = sign_token("http://h/p", "a&b c", &key(), SE);
        assert!(token.expose().ends_with("&skn=a%26b%20c"));
        assert_eq!(parse_token(token.expose()).unwrap().key_name(), "a&b c");
    }

    #[test]
    fn signed_token_debug_is_redacted() {
        let token = sign_token(
            "http://contoso.servicebus.windows.net/hyco",
            SKN,
            &key(),
            SE,
        );
        assert_eq!(format!("{token:?}"), "<redacted>");
    }

    #[test]
    fn parse_main_vector() {
        let parsed = parse_token(TOKEN).unwrap();
        assert_eq!(
            parsed.sr_raw(),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco"
        );
        assert_eq!(
            parsed.resource(),
            "http://contoso.servicebus.windows.net/hyco"
        );
        assert_eq!(
            parsed.signature().expose(),
            "bczrn9F3GUqyo6XWPPUhTBuR+L0oAezp6WADvWcO0Xg="
        );
        assert_eq!(parsed.se_raw(), "1700000000");
        assert_eq!(parsed.expiry(), SE);
        assert_eq!(parsed.key_name(), SKN);
        assert_eq!(
            parsed.string_to_sign(),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco\n1700000000"
        );
    }

    #[test]
    fn parse_debug_redacts_the_signature() {
        let text = format!("{:?}", parse_token(TOKEN).unwrap());
        assert!(!text.contains("bczrn9F3"), "{text}");
    }

    #[test]
    fn parse_accepts_any_field_order_and_case() {
        let token = "sharedaccesssignature SIG=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&Se=1700000000&sKn=RootManageSharedAccessKey&Sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco";
        let parsed = parse_token(token).unwrap();
        assert_eq!(
            parsed.sr_raw(),
            "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco"
        );
        assert_eq!(
            parsed.signature().expose(),
            "bczrn9F3GUqyo6XWPPUhTBuR+L0oAezp6WADvWcO0Xg="
        );
        assert_eq!(parsed.expiry(), SE);
        assert_eq!(parsed.key_name(), SKN);
    }

    #[test]
    fn parse_keeps_plus_and_slash_in_sig() {
        let token = "SharedAccessSignature sr=x&sig=ab/c+d=&se=1&skn=k";
        assert_eq!(parse_token(token).unwrap().signature().expose(), "ab/c+d=");
    }

    #[test]
    fn parse_keeps_sr_hex_case() {
        let token = "SharedAccessSignature sr=http%3a%2f%2fh%2F&sig=s&se=1&skn=k";
        let parsed = parse_token(token).unwrap();
        assert_eq!(parsed.sr_raw(), "http%3a%2f%2fh%2F");
        assert_eq!(parsed.resource(), "http://h/");
    }

    #[test]
    fn parse_skips_empty_fields_and_ignores_unknown_ones() {
        let token = "SharedAccessSignature &sr=x&&sig=s&extra=1&se=1&skn=k&";
        let parsed = parse_token(token).unwrap();
        assert_eq!(parsed.sr_raw(), "x");
        assert_eq!(parsed.key_name(), "k");
    }

    #[test]
    fn parse_rejects_missing_prefix() {
        for token in [
            "",
            "sr=x&sig=s&se=1&skn=k",
            "SharedAccessSignaturesr=x&sig=s&se=1&skn=k",
            " SharedAccessSignature sr=x&sig=s&se=1&skn=k",
            "Bearer eyJ0eXAi",
            "SharedAccessSignature%20sr%3Dx",
        ] {
            assert_eq!(
                parse_token(token),
                Err(TokenError::MissingPrefix),
                "{token:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_field_without_equals() {
        let token = "SharedAccessSignature sr=x&sig=s&se=1&skn=k&secretish";
        let err = parse_token(token).unwrap_err();
        assert_eq!(err, TokenError::FieldWithoutEquals { index: 4 });
        assert!(!err.to_string().contains("secretish"));
    }

    #[test]
    fn parse_rejects_duplicate_field() {
        let token = "SharedAccessSignature sr=x&sig=s&SIG=t&se=1&skn=k";
        assert_eq!(
            parse_token(token),
            Err(TokenError::DuplicateField {
                field: TokenField::Sig
            })
        );
    }

    #[test]
    fn parse_rejects_each_missing_field() {
        let cases = [
            ("SharedAccessSignature sig=s&se=1&skn=k", TokenField::Sr),
            ("SharedAccessSignature sr=x&se=1&skn=k", TokenField::Sig),
            ("SharedAccessSignature sr=x&sig=s&skn=k", TokenField::Se),
            ("SharedAccessSignature sr=x&sig=s&se=1", TokenField::Skn),
        ];
        for (token, field) in cases {
            assert_eq!(
                parse_token(token),
                Err(TokenError::MissingField { field }),
                "{token}"
            );
        }
    }

    #[test]
    fn parse_rejects_empty_field() {
        let token = "SharedAccessSignature sr=x&sig=&se=1&skn=k";
        assert_eq!(
            parse_token(token),
            Err(TokenError::EmptyField {
                field: TokenField::Sig
            })
        );
    }

    #[test]
    fn parse_rejects_field_not_utf8() {
        let token = "SharedAccessSignature sr=x&sig=s&se=1&skn=%FF";
        assert_eq!(
            parse_token(token),
            Err(TokenError::FieldNotUtf8 {
                field: TokenField::Skn
            })
        );
        let token = "SharedAccessSignature sr=%C3&sig=s&se=1&skn=k";
        assert_eq!(
            parse_token(token),
            Err(TokenError::FieldNotUtf8 {
                field: TokenField::Sr
            })
        );
    }

    #[test]
    fn parse_rejects_non_decimal_expiry() {
        for se in ["+1", "-1", "1.5", "0x10", "1e9", " 1"] {
            let token = format!("SharedAccessSignature sr=x&sig=s&se={se}&skn=k");
            assert_eq!(
                parse_token(&token),
                Err(TokenError::ExpiryNotDecimal),
                "{se}"
            );
        }
    }

    #[test]
    fn parse_rejects_expiry_beyond_u64() {
        let token = "SharedAccessSignature sr=x&sig=s&se=18446744073709551616&skn=k";
        assert_eq!(parse_token(token), Err(TokenError::ExpiryOutOfRange));
        let token = "SharedAccessSignature sr=x&sig=s&se=18446744073709551615&skn=k";
        assert_eq!(parse_token(token).unwrap().expiry(), u64::MAX);
    }

    #[test]
    fn decode_query_token_leaves_plain_tokens_alone() {
        assert!(matches!(decode_query_token(TOKEN), Ok(Cow::Borrowed(t)) if t == TOKEN));
        assert!(matches!(
            decode_query_token("garbage%20"),
            Ok(Cow::Borrowed("garbage%20"))
        ));
    }

    #[test]
    fn decode_query_token_decodes_exactly_once() {
        let decoded = decode_query_token(QUERY_TOKEN).unwrap();
        assert!(decoded.contains("sr=http%3A%2F%2F"));
        assert_eq!(
            parse_token(&decoded).unwrap().resource(),
            "http://contoso.servicebus.windows.net/hyco"
        );
    }

    #[test]
    fn decode_query_token_rejects_non_utf8() {
        assert_eq!(
            decode_query_token("SharedAccessSignature%20sr%3D%FF"),
            Err(TokenError::QueryValueNotUtf8)
        );
    }
}
