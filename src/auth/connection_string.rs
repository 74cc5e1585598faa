//! Azure Relay connection strings (protocol §3.5).
//!
//! `Endpoint=sb://{ns}/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…]` or
//! `Endpoint=sb://{ns}/;SharedAccessSignature=SharedAccessSignature sr=…[;EntityPath=…]`.
//!
//! Parsing follows the .NET `RelayConnectionStringBuilder`: `;`-separated segments, each split at
//! its **first** `=` (keys contain `=` padding), key names compared case-insensitively, empty
//! segments ignored, an empty value counts as absent. Deliberate differences: whitespace around
//! keys and values is trimmed, a repeated key is an error instead of "last one wins", and an
//! unknown key is collected in [`ConnectionString::unknown_keys`] (the caller warns) instead of
//! failing the whole string.
//!
//! The key and the signature are held as [`Secret`]s; no error message ever contains a value
//! that could be one (a segment without `=` is reported by its position only).

use std::fmt;

use url::Url;

use crate::secret::Secret;

/// The .NET SDK's limit on the length of a key name and of a key, in characters (protocol §3.2).
pub const MAX_KEY_LENGTH: usize = 256;

/// A parsed, validated connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    endpoint: Url,
    namespace_host: String,
    entity_path: Option<String>,
    credential: Credential,
    unknown_keys: Vec<String>,
}

/// How the daemon authenticates: a key it signs tokens with, or a ready-made token (protocol §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `SharedAccessKeyName` + `SharedAccessKey`: tokens are minted (and renewed) locally.
    KeyPair { key_name: String, key: Secret },
    /// `SharedAccessSignature`: a token used as-is; it cannot be renewed.
    Signature(Secret),
}

impl Credential {
    /// The token to present for `entity` on `namespace_host`: minted with the .NET resource
    /// form `http://{host}/{entity}/` and expiry `expiry_unix_secs` (protocol §3.3, §3.4), or the
    /// ready-made token as it is.
    pub fn token(&self, namespace_host: &str, entity: &str, expiry_unix_secs: u64) -> Secret {
        match self {
            Self::KeyPair { key_name, key } => crate::auth::sas::sign_token(
                &crate::auth::sas::dotnet_resource_uri(namespace_host, entity),
                key_name,
                key,
                expiry_unix_secs,
            ),
            Self::Signature(token) => token.clone(),
        }
    }
}

/// Why a connection string was rejected. No variant carries a key, a signature or segment text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStringError {
    /// The text has no `Key=Value` segment at all.
    Empty,
    /// No `Endpoint` key (or an empty value).
    MissingEndpoint,
    /// `Endpoint` is not an absolute URI.
    EndpointNotAbsoluteUri { reason: url::ParseError },
    /// `Endpoint` uses another scheme than `sb`.
    EndpointSchemeNotSb { scheme: String },
    /// `Endpoint` has no host (e.g. `sb:///`).
    EndpointWithoutHost,
    /// A non-empty segment has no `=`; `segment_index` counts all `;`-separated segments from 0.
    SegmentWithoutEquals { segment_index: usize },
    /// A recognised key appears twice; `key` is its canonical spelling.
    DuplicateKey { key: &'static str },
    /// `SharedAccessKeyName` is given without `SharedAccessKey`.
    KeyNameWithoutKey,
    /// `SharedAccessKey` is given without `SharedAccessKeyName`.
    KeyWithoutKeyName,
    /// `SharedAccessSignature` is combined with `SharedAccessKeyName` and/or `SharedAccessKey`.
    BothKeyAndSignature,
    /// Neither a key pair nor a signature is given.
    NoCredential,
    /// `SharedAccessKey` is longer than [`MAX_KEY_LENGTH`] characters.
    KeyTooLong { max: usize },
    /// `SharedAccessKeyName` is longer than [`MAX_KEY_LENGTH`] characters.
    KeyNameTooLong { max: usize },
    /// `EntityPath` is not a usable hybrid connection path.
    EntityPathInvalid { problem: EntityPathProblem },
}

/// What is wrong with an `EntityPath` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityPathProblem {
    /// The value is empty.
    Empty,
    /// The value starts with `/` (the .NET SDK refuses it, protocol §2.2).
    LeadingSlash,
    /// The value ends with `/` (the .NET SDK refuses it, protocol §2.2).
    TrailingSlash,
    /// The value contains `//`, an empty path segment.
    EmptySegment,
}

impl fmt::Display for EntityPathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::LeadingSlash => "it starts with '/'",
            Self::TrailingSlash => "it ends with '/'",
            Self::EmptySegment => "it contains an empty segment ('//')",
        })
    }
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("connection string is empty"),
            Self::MissingEndpoint => f.write_str("connection string has no Endpoint"),
            Self::EndpointNotAbsoluteUri { reason } => {
                write!(f, "connection string Endpoint is not an absolute URI: {reason}")
            }
            Self::EndpointSchemeNotSb { scheme } => write!(
                f,
                "connection string Endpoint must use the sb:// scheme, got {scheme:?}"
            ),
            Self::EndpointWithoutHost => f.write_str("connection string Endpoint has no host"),
            Self::SegmentWithoutEquals { segment_index } => write!(
                f,
                "connection string segment {} (counting ';'-separated segments from 1) has no '='",
                segment_index.saturating_add(1)
            ),
            Self::DuplicateKey { key } => write!(f, "connection string has {key} more than once"),
            Self::KeyNameWithoutKey => f.write_str(
                "connection string has SharedAccessKeyName but no SharedAccessKey; both are needed",
            ),
            Self::KeyWithoutKeyName => f.write_str(
                "connection string has SharedAccessKey but no SharedAccessKeyName; both are needed",
            ),
            Self::BothKeyAndSignature => f.write_str(
                "connection string combines SharedAccessSignature with SharedAccessKeyName/SharedAccessKey; use one or the other",
            ),
            Self::NoCredential => f.write_str(
                "connection string has no credential: give SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature",
            ),
            Self::KeyTooLong { max } => {
                write!(f, "connection string SharedAccessKey is longer than {max} characters")
            }
            Self::KeyNameTooLong { max } => write!(
                f,
                "connection string SharedAccessKeyName is longer than {max} characters"
            ),
            Self::EntityPathInvalid { problem } => {
                write!(f, "connection string EntityPath is invalid: {problem}")
            }
        }
    }
}

impl std::error::Error for ConnectionStringError {}

/// The settings (keys) the parser knows, by canonical spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Endpoint,
    EntityPath,
    SharedAccessKeyName,
    SharedAccessKey,
    SharedAccessSignature,
    OperationTimeout,
    Authentication,
}

impl Setting {
    const ALL: [Setting; 7] = [
        Setting::Endpoint,
        Setting::EntityPath,
        Setting::SharedAccessKeyName,
        Setting::SharedAccessKey,
        Setting::SharedAccessSignature,
        Setting::OperationTimeout,
        Setting::Authentication,
    ];

    fn name(self) -> &'static str {
        match self {
            Setting::Endpoint => "Endpoint",
            Setting::EntityPath => "EntityPath",
            Setting::SharedAccessKeyName => "SharedAccessKeyName",
            Setting::SharedAccessKey => "SharedAccessKey",
            Setting::SharedAccessSignature => "SharedAccessSignature",
            Setting::OperationTimeout => "OperationTimeout",
            Setting::Authentication => "Authentication",
        }
    }

    fn lookup(name: &str) -> Option<Setting> {
        Setting::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// The raw values of the recognised keys, before validation. `None` = absent or empty.
#[derive(Default)]
struct RawValues<'a> {
    endpoint: Option<&'a str>,
    entity_path: Option<&'a str>,
    key_name: Option<&'a str>,
    key: Option<&'a str>,
    signature: Option<&'a str>,
}

impl ConnectionString {
    /// Parses and validates a connection string (protocol §3.5).
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let (raw, unknown_keys) = split_segments(text)?;
        let endpoint = parse_endpoint(raw.endpoint)?;
        let namespace_host = endpoint
            .host_str()
            .ok_or(ConnectionStringError::EndpointWithoutHost)?
            .to_ascii_lowercase();
        let entity_path = raw.entity_path.map(validate_entity_path).transpose()?;
        let credential = credential(&raw)?;
        Ok(Self {
            endpoint,
            namespace_host,
            entity_path,
            credential,
            unknown_keys,
        })
    }

    /// The `Endpoint` URI, e.g. `sb://contoso.servicebus.windows.net/`.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The endpoint's host, lower-cased, e.g. `contoso.servicebus.windows.net`.
    pub fn namespace_host(&self) -> &str {
        &self.namespace_host
    }

    /// The `EntityPath` (hybrid connection path), if the connection string names one.
    pub fn entity_path(&self) -> Option<&str> {
        self.entity_path.as_deref()
    }

    /// The key pair or ready-made token.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Names of keys the parser did not recognise, in order of appearance; the caller warns.
    pub fn unknown_keys(&self) -> &[String] {
        &self.unknown_keys
    }
}

/// Splits the text into segments and files each value under its key.
fn split_segments(text: &str) -> Result<(RawValues<'_>, Vec<String>), ConnectionStringError> {
    let mut raw = RawValues::default();
    let mut seen: Vec<Setting> = Vec::new();
    let mut unknown_keys = Vec::new();
    let mut any_segment = false;
    for (segment_index, segment) in text.split(';').enumerate() {
        if segment.trim().is_empty() {
            continue;
        }
        any_segment = true;
        let (name, value) = segment
            .split_once('=')
            .ok_or(ConnectionStringError::SegmentWithoutEquals { segment_index })?;
        let name = name.trim();
        let value = Some(value.trim()).filter(|v| !v.is_empty());
        let Some(key) = Setting::lookup(name) else {
            unknown_keys.push(name.to_owned());
            continue;
        };
        if seen.contains(&key) {
            return Err(ConnectionStringError::DuplicateKey { key: key.name() });
        }
        seen.push(key);
        match key {
            Setting::Endpoint => raw.endpoint = value,
            Setting::EntityPath => raw.entity_path = Some(value.unwrap_or("")),
            Setting::SharedAccessKeyName => raw.key_name = value,
            Setting::SharedAccessKey => raw.key = value,
            Setting::SharedAccessSignature => raw.signature = value,
            Setting::OperationTimeout | Setting::Authentication => {}
        }
    }
    if !any_segment {
        return Err(ConnectionStringError::Empty);
    }
    Ok((raw, unknown_keys))
}

/// `Endpoint` must be an absolute `sb://host/` URI.
fn parse_endpoint(value: Option<&str>) -> Result<Url, ConnectionStringError> {
    let value = value.ok_or(ConnectionStringError::MissingEndpoint)?;
    let endpoint = Url::parse(value)
        .map_err(|reason| ConnectionStringError::EndpointNotAbsoluteUri { reason })?;
    if endpoint.scheme() != "sb" {
        return Err(ConnectionStringError::EndpointSchemeNotSb {
            scheme: endpoint.scheme().to_owned(),
        });
    }
    match endpoint.host_str() {
        Some(host) if !host.is_empty() => Ok(endpoint),
        _ => Err(ConnectionStringError::EndpointWithoutHost),
    }
}

/// What makes `path` unusable as a hybrid connection path, if anything: it must be non-empty,
/// without a leading or trailing `/` (protocol §2.2) and without empty segments.
pub fn entity_path_problem(path: &str) -> Option<EntityPathProblem> {
    if path.is_empty() {
        Some(EntityPathProblem::Empty)
    } else if path.starts_with('/') {
        Some(EntityPathProblem::LeadingSlash)
    } else if path.ends_with('/') {
        Some(EntityPathProblem::TrailingSlash)
    } else if path.contains("//") {
        Some(EntityPathProblem::EmptySegment)
    } else {
        None
    }
}

fn validate_entity_path(path: &str) -> Result<String, ConnectionStringError> {
    match entity_path_problem(path) {
        Some(problem) => Err(ConnectionStringError::EntityPathInvalid { problem }),
        None => Ok(path.to_owned()),
    }
}

/// The credential rules of the .NET builder's `Validate` (protocol §3.5).
fn credential(raw: &RawValues<'_>) -> Result<Credential, ConnectionStringError> {
    match (raw.key_name, raw.key, raw.signature) {
        (None, None, Some(signature)) => Ok(Credential::Signature(Secret::new(signature))),
        (_, _, Some(_)) => Err(ConnectionStringError::BothKeyAndSignature),
        (Some(key_name), Some(key), None) => {
            if key_name.chars().count() > MAX_KEY_LENGTH {
                return Err(ConnectionStringError::KeyNameTooLong {
                    max: MAX_KEY_LENGTH,
                });
            }
            if key.chars().count() > MAX_KEY_LENGTH {
                return Err(ConnectionStringError::KeyTooLong {
                    max: MAX_KEY_LENGTH,
                });
            }
            Ok(Credential::KeyPair {
                key_name: key_name.to_owned(),
                key: Secret::new(key),
            })
        }
        (Some(_), None, None) => Err(ConnectionStringError::KeyNameWithoutKey),
        (None, Some(_), None) => Err(ConnectionStringError::KeyWithoutKeyName),
        (None, None, None) => Err(ConnectionStringError::NoCredential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
    const TOKEN: &str = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&se=1700000000&skn=RootManageSharedAccessKey";

    fn key_pair(extra: &str) -> String {
        format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY}{extra}"
        )
    }

    fn parse_err(text: &str) -> ConnectionStringError {
        match ConnectionString::parse(text) {
            Ok(cs) => panic!("expected an error, parsed {cs:?}"),
            Err(e) => e,
        }
    }

    /// Every error message of these tests is checked for leaks of the secrets in the input.
    fn assert_no_secret(err: &ConnectionStringError) {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(KEY), "key leaked: {text}");
        assert!(!text.contains("bczrn9F3"), "signature leaked: {text}");
    }

    #[test]
    fn parses_key_pair_with_entity_path() {
        let cs = ConnectionString::parse(&key_pair(";EntityPath=hyco")).unwrap();
        assert_eq!(
            cs.endpoint().as_str(),
            "sb://contoso.servicebus.windows.net/"
        );
        assert_eq!(cs.namespace_host(), "contoso.servicebus.windows.net");
        assert_eq!(cs.entity_path(), Some("hyco"));
        assert_eq!(
            cs.credential(),
            &Credential::KeyPair {
                key_name: "RootManageSharedAccessKey".into(),
                key: Secret::new(KEY),
            }
        );
        assert!(cs.unknown_keys().is_empty());
    }

    #[test]
    fn key_is_split_at_the_first_equals_only() {
        let cs = ConnectionString::parse(&key_pair("")).unwrap();
        let Credential::KeyPair { key, .. } = cs.credential() else {
            panic!("expected a key pair");
        };
        assert_eq!(key.expose(), KEY);
        assert!(key.expose().ends_with('='));
    }

    #[test]
    fn parses_signature_credential() {
        let text = format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessSignature={TOKEN};EntityPath=hyco"
        );
        let cs = ConnectionString::parse(&text).unwrap();
        assert_eq!(cs.credential(), &Credential::Signature(Secret::new(TOKEN)));
        assert_eq!(cs.entity_path(), Some("hyco"));
    }

    #[test]
    fn keys_are_case_insensitive_and_whitespace_is_trimmed() {
        let text = format!(
            " endpoint = sb://contoso.servicebus.windows.net/ ;\n sharedaccesskeyname=k ; SHAREDACCESSKEY={KEY}\n"
        );
        let cs = ConnectionString::parse(&text).unwrap();
        assert_eq!(cs.namespace_host(), "contoso.servicebus.windows.net");
        assert_eq!(
            cs.credential(),
            &Credential::KeyPair {
                key_name: "k".into(),
                key: Secret::new(KEY),
            }
        );
    }

    #[test]
    fn empty_segments_are_ignored() {
        let text = format!(";;{};;", key_pair(";;EntityPath=hyco"));
        let cs = ConnectionString::parse(&text).unwrap();
        assert_eq!(cs.entity_path(), Some("hyco"));
    }

    #[test]
    fn namespace_host_is_lower_cased() {
        let text = key_pair("").replace("contoso.servicebus", "Contoso.ServiceBus");
        let cs = ConnectionString::parse(&text).unwrap();
        assert_eq!(cs.namespace_host(), "contoso.servicebus.windows.net");
    }

    #[test]
    fn endpoint_port_is_kept_in_the_uri_but_not_in_the_host() {
        let text = key_pair("").replace(".net/", ".net:5671/");
        let cs = ConnectionString::parse(&text).unwrap();
        assert_eq!(cs.endpoint().port(), Some(5671));
        assert_eq!(cs.namespace_host(), "contoso.servicebus.windows.net");
    }

    #[test]
    fn operation_timeout_and_authentication_are_recognised_and_ignored() {
        let cs = ConnectionString::parse(&key_pair(
            ";OperationTimeout=00:01:00;Authentication=Managed Identity",
        ))
        .unwrap();
        assert!(cs.unknown_keys().is_empty());
    }

    #[test]
    fn unknown_keys_are_collected_by_name() {
        let cs = ConnectionString::parse(&key_pair(";TransportType=Amqp; Foo =bar")).unwrap();
        assert_eq!(cs.unknown_keys(), ["TransportType", "Foo"]);
    }

    #[test]
    fn empty_text_is_rejected() {
        assert_eq!(parse_err(""), ConnectionStringError::Empty);
        assert_eq!(parse_err(" ; ;\n"), ConnectionStringError::Empty);
    }

    #[test]
    fn missing_endpoint_is_rejected() {
        let text = format!("SharedAccessKeyName=k;SharedAccessKey={KEY}");
        assert_eq!(parse_err(&text), ConnectionStringError::MissingEndpoint);
        let text = format!("Endpoint=;SharedAccessKeyName=k;SharedAccessKey={KEY}");
        assert_eq!(parse_err(&text), ConnectionStringError::MissingEndpoint);
    }

    #[test]
    fn relative_endpoint_is_rejected() {
        let text = key_pair("").replace("sb://contoso", "contoso");
        let err = parse_err(&text);
        assert_eq!(
            err,
            ConnectionStringError::EndpointNotAbsoluteUri {
                reason: url::ParseError::RelativeUrlWithoutBase
            }
        );
        assert_no_secret(&err);
    }

    #[test]
    fn non_sb_endpoint_is_rejected() {
        let text = key_pair("").replace("sb://", "https://");
        let err = parse_err(&text);
        assert_eq!(
            err,
            ConnectionStringError::EndpointSchemeNotSb {
                scheme: "https".into()
            }
        );
        assert!(err.to_string().contains("\"https\""));
    }

    #[test]
    fn endpoint_without_host_is_rejected() {
        for endpoint in ["sb:///", "sb://", "sb:contoso"] {
            let text = key_pair("").replace("sb://contoso.servicebus.windows.net/", endpoint);
            assert_eq!(
                parse_err(&text),
                ConnectionStringError::EndpointWithoutHost,
                "{endpoint}"
            );
        }
    }

    #[test]
    fn segment_without_equals_is_reported_by_index_without_its_text() {
        // A key pasted without its name: the segment text is a secret.
        let text = format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;;SharedAccessKeyName=k;{}",
            KEY.trim_end_matches('=')
        );
        let err = parse_err(&text);
        assert_eq!(
            err,
            ConnectionStringError::SegmentWithoutEquals { segment_index: 3 }
        );
        assert!(err.to_string().contains("segment 4"));
        assert!(!format!("{err} {err:?}").contains(KEY.trim_end_matches('=')));
    }

    #[test]
    fn duplicate_key_is_rejected_case_insensitively() {
        let err = parse_err(&key_pair(";entitypath=a;ENTITYPATH=b"));
        assert_eq!(
            err,
            ConnectionStringError::DuplicateKey { key: "EntityPath" }
        );
        let err = parse_err(&key_pair(&format!(";sharedaccesskey={KEY}")));
        assert_eq!(
            err,
            ConnectionStringError::DuplicateKey {
                key: "SharedAccessKey"
            }
        );
        assert_no_secret(&err);
    }

    #[test]
    fn key_name_without_key_is_rejected() {
        let text = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=k";
        assert_eq!(parse_err(text), ConnectionStringError::KeyNameWithoutKey);
        let text = format!("{text};SharedAccessKey=");
        assert_eq!(parse_err(&text), ConnectionStringError::KeyNameWithoutKey);
    }

    #[test]
    fn key_without_key_name_is_rejected() {
        let text = format!("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKey={KEY}");
        let err = parse_err(&text);
        assert_eq!(err, ConnectionStringError::KeyWithoutKeyName);
        assert_no_secret(&err);
    }

    #[test]
    fn key_and_signature_together_are_rejected() {
        let err = parse_err(&key_pair(&format!(";SharedAccessSignature={TOKEN}")));
        assert_eq!(err, ConnectionStringError::BothKeyAndSignature);
        assert_no_secret(&err);
        let text = format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessSignature={TOKEN}"
        );
        assert_eq!(parse_err(&text), ConnectionStringError::BothKeyAndSignature);
    }

    #[test]
    fn no_credential_is_rejected() {
        let text = "Endpoint=sb://contoso.servicebus.windows.net/;EntityPath=hyco";
        assert_eq!(parse_err(text), ConnectionStringError::NoCredential);
    }

    #[test]
    fn key_longer_than_256_characters_is_rejected() {
        let long_key = "k".repeat(MAX_KEY_LENGTH + 1);
        let text = format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=n;SharedAccessKey={long_key}"
        );
        let err = parse_err(&text);
        assert_eq!(err, ConnectionStringError::KeyTooLong { max: 256 });
        assert!(!err.to_string().contains(&long_key));
        let at_limit = text.replace(&long_key, &long_key[1..]);
        assert!(ConnectionString::parse(&at_limit).is_ok());
    }

    #[test]
    fn key_name_longer_than_256_characters_is_rejected() {
        let long_name = "n".repeat(MAX_KEY_LENGTH + 1);
        let text = format!(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName={long_name};SharedAccessKey={KEY}"
        );
        assert_eq!(
            parse_err(&text),
            ConnectionStringError::KeyNameTooLong { max: 256 }
        );
        let at_limit = text.replace(&long_name, &long_name[1..]);
        assert!(ConnectionString::parse(&at_limit).is_ok());
    }

    #[test]
    fn invalid_entity_paths_are_rejected() {
        let cases = [
            ("", EntityPathProblem::Empty),
            ("/hyco", EntityPathProblem::LeadingSlash),
            ("hyco/", EntityPathProblem::TrailingSlash),
            ("a//b", EntityPathProblem::EmptySegment),
        ];
        for (path, problem) in cases {
            assert_eq!(
                parse_err(&key_pair(&format!(";EntityPath={path}"))),
                ConnectionStringError::EntityPathInvalid { problem },
                "{path:?}"
            );
        }
    }

    #[test]
    fn multi_segment_entity_path_is_accepted() {
        let cs = ConnectionString::parse(&key_pair(";EntityPath=a/b/c")).unwrap();
        assert_eq!(cs.entity_path(), Some("a/b/c"));
    }

    #[test]
    fn debug_output_redacts_key_and_signature() {
        let cs = ConnectionString::parse(&key_pair("")).unwrap();
        let text = format!("{cs:?}");
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("<redacted>"));
        let signed =
            format!("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessSignature={TOKEN}");
        let text = format!("{:?}", ConnectionString::parse(&signed).unwrap());
        assert!(!text.contains("bczrn9F3"), "{text}");
    }
}
