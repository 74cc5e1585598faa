//! `hycod token`: mint a SAS token for a hybrid connection the way the .NET SDK does
//! (protocol §3.2–§3.4): `sr` is `http://{namespace}/{entity}/`, signed with the connection
//! string's key, expiring `--ttl` from now.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::connection_string::{
    ConnectionString, ConnectionStringError, Credential, EntityPathProblem,
};
use crate::auth::sas;
use crate::config::entity_path_problem;
use crate::secret::Secret;

use super::EXIT_ERROR;

/// Why no token could be minted. No variant carries a key or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCommandError {
    /// The connection string file could not be read.
    ReadFile { file: PathBuf, io: String },
    /// The connection string is malformed (protocol §3.5).
    ConnectionString(ConnectionStringError),
    /// The connection string holds a ready-made signature, not a key to sign with.
    NoKey,
    /// Neither `--entity` nor the connection string's `EntityPath` names the hybrid connection.
    NoEntity,
    /// `--entity` and the connection string's `EntityPath` differ.
    EntityMismatch {
        given: String,
        in_connection_string: String,
    },
    /// `--entity` is not a usable hybrid connection path.
    InvalidEntity { problem: EntityPathProblem },
    /// The system clock is before 1970.
    ClockBeforeEpoch,
    /// Now plus the lifetime does not fit in 64-bit seconds.
    ExpiryOverflow,
}

impl fmt::Display for TokenCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadFile { file, io } => {
                write!(f, "--connection-string-file: cannot read {}: {io}", file.display())
            }
            Self::ConnectionString(error) => write!(f, "--connection-string-file: {error}"),
            Self::NoKey => f.write_str(
                "--connection-string-file: the connection string has a SharedAccessSignature, \
                 not a SharedAccessKeyName/SharedAccessKey pair to sign with",
            ),
            Self::NoEntity => f.write_str(
                "--entity: required because the connection string has no EntityPath",
            ),
            Self::EntityMismatch {
                given,
                in_connection_string,
            } => write!(
                f,
                "--entity: {given:?} disagrees with the connection string's EntityPath {in_connection_string:?}"
            ),
            Self::InvalidEntity { problem } => {
                write!(f, "--entity: not a usable hybrid connection path: {problem}")
            }
            Self::ClockBeforeEpoch => f.write_str("the system clock is before 1970"),
            Self::ExpiryOverflow => f.write_str("--ttl: the expiry does not fit in 64 bits"),
        }
    }
}

impl std::error::Error for TokenCommandError {}

/// Reads the file, mints a token valid for `ttl` from now and prints it (exit 0), or prints the
/// error (exit 2).
pub(super) fn run(file: &Path, entity: Option<&str>, ttl: Duration) -> ExitCode {
    let result = read_connection_string(file).and_then(|text| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TokenCommandError::ClockBeforeEpoch)?;
        mint_token(&text, entity, ttl, now.as_secs())
    });
    match result {
        Ok(token) => {
            // Printing the token is the purpose of this command.
            println!("{}", token.expose());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn read_connection_string(file: &Path) -> Result<Secret, TokenCommandError> {
    let text = std::fs::read_to_string(file)
        .map(Secret::new)
        .map_err(|error| TokenCommandError::ReadFile {
            file: file.to_path_buf(),
            io: error.to_string(),
        })?;
    Ok(Secret::new(text.expose().trim()))
}

/// A token for `entity` (or the connection string's `EntityPath`) expiring `ttl` after
/// `now_unix_secs`, signed over the .NET resource URI (protocol §3.4).
pub fn mint_token(
    connection_string: &Secret,
    entity: Option<&str>,
    ttl: Duration,
    now_unix_secs: u64,
) -> Result<Secret, TokenCommandError> {
    let parsed = ConnectionString::parse(connection_string.expose())
        .map_err(TokenCommandError::ConnectionString)?;
    let Credential::KeyPair { key_name, key } = parsed.credential() else {
        return Err(TokenCommandError::NoKey);
    };
    let entity = match (entity, parsed.entity_path()) {
        (None, None) => return Err(TokenCommandError::NoEntity),
        (None, Some(from_string)) => from_string,
        (Some(given), in_connection_string) => {
            if let Some(problem) = entity_path_problem(given) {
                return Err(TokenCommandError::InvalidEntity { problem });
            }
            match in_connection_string {
                Some(from_string) if from_string != given => {
                    return Err(TokenCommandError::EntityMismatch {
                        given: given.to_owned(),
                        in_connection_string: from_string.to_owned(),
                    })
                }
                _ => given,
            }
        }
    };
    let expiry = now_unix_secs
        .checked_add(ttl.as_secs())
        .ok_or(TokenCommandError::ExpiryOverflow)?;
    let resource = sas::dotnet_resource_uri(parsed.namespace_host(), entity);
    Ok(sas::sign_token(&resource, key_name, key, expiry))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use ring::hmac;

    use super::*;

    const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
    const NOW: u64 = 1_700_000_000;

    fn connection_string(entity_path: Option<&str>) -> Secret {
        let mut text = format!(
            "Endpoint=sb://Contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY}"
        );
        if let Some(entity_path) = entity_path {
            text.push_str(&format!(";EntityPath={entity_path}"));
        }
        Secret::new(text)
    }

    #[test]
    fn token_is_signed_over_the_dotnet_resource_uri() {
        let token = mint_token(
            &connection_string(Some("hyco")),
            None,
            Duration::from_secs(3600),
            NOW,
        )
        .expect("token");
        let parsed = sas::parse_token(token.expose()).expect("parses");
        assert_eq!(
            parsed.resource(),
            "http://contoso.servicebus.windows.net/hyco/"
        );
        assert_eq!(parsed.key_name(), "RootManageSharedAccessKey");
        assert_eq!(parsed.expiry(), NOW + 3600);
        let mac = BASE64.decode(parsed.signature().expose()).expect("base64");
        let key = sas::hmac_key(&Secret::new(KEY));
        assert!(hmac::verify(&key, parsed.string_to_sign().as_bytes(), &mac).is_ok());
    }

    #[test]
    fn matches_the_spec_vector_for_the_dotnet_resource() {
        // Protocol §3.6: the .NET-style row for `hyco` at se = 1700000000.
        let token =
            mint_token(&connection_string(Some("hyco")), None, Duration::ZERO, NOW).expect("token");
        assert!(token
            .expose()
            .contains("sig=0jj6czaBfUJ%2FAQrXCZtyVwOeZrEzDmkUcMHV53wNYWk%3D&se=1700000000"));
    }

    #[test]
    fn entity_argument_is_used_without_entity_path() {
        let token = mint_token(
            &connection_string(None),
            Some("sap/gw"),
            Duration::from_secs(60),
            NOW,
        )
        .expect("token");
        let parsed = sas::parse_token(token.expose()).expect("parses");
        assert_eq!(
            parsed.resource(),
            "http://contoso.servicebus.windows.net/sap/gw/"
        );
    }

    #[test]
    fn entity_argument_may_repeat_the_entity_path() {
        assert!(mint_token(
            &connection_string(Some("hyco")),
            Some("hyco"),
            Duration::from_secs(60),
            NOW
        )
        .is_ok());
    }

    #[test]
    fn entity_is_required() {
        let error = mint_token(&connection_string(None), None, Duration::from_secs(60), NOW);
        assert_eq!(error, Err(TokenCommandError::NoEntity));
    }

    #[test]
    fn entity_must_agree_with_entity_path() {
        let error = mint_token(
            &connection_string(Some("a")),
            Some("b"),
            Duration::from_secs(60),
            NOW,
        );
        assert_eq!(
            error,
            Err(TokenCommandError::EntityMismatch {
                given: "b".into(),
                in_connection_string: "a".into()
            })
        );
    }

    #[test]
    fn entity_must_be_a_usable_path() {
        let error = mint_token(
            &connection_string(None),
            Some("/x"),
            Duration::from_secs(60),
            NOW,
        );
        assert_eq!(
            error,
            Err(TokenCommandError::InvalidEntity {
                problem: EntityPathProblem::LeadingSlash
            })
        );
    }

    #[test]
    fn malformed_connection_string_is_reported_without_the_key() {
        let text = Secret::new(format!("SharedAccessKeyName=k;SharedAccessKey={KEY}"));
        let error =
            mint_token(&text, Some("x"), Duration::from_secs(60), NOW).expect_err("malformed");
        assert_eq!(
            error,
            TokenCommandError::ConnectionString(ConnectionStringError::MissingEndpoint)
        );
        assert!(!error.to_string().contains(KEY));
    }

    #[test]
    fn a_signature_cannot_sign() {
        let text = Secret::new(
            "Endpoint=sb://ns.example/;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1&skn=k",
        );
        assert_eq!(
            mint_token(&text, Some("x"), Duration::from_secs(60), NOW),
            Err(TokenCommandError::NoKey)
        );
    }

    #[test]
    fn expiry_overflow() {
        let error = mint_token(
            &connection_string(Some("x")),
            None,
            Duration::from_secs(u64::MAX),
            NOW,
        );
        assert_eq!(error, Err(TokenCommandError::ExpiryOverflow));
    }

    #[test]
    fn unreadable_file() {
        let error = read_connection_string(Path::new("/nonexistent/conn")).expect_err("missing");
        assert!(matches!(error, TokenCommandError::ReadFile { .. }));
        assert!(error.to_string().contains("cannot read /nonexistent/conn"));
    }

    #[test]
    fn file_content_is_trimmed() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            format!("{}\n", connection_string(Some("x")).expose()),
        )
        .expect("write");
        let text = read_connection_string(file.path()).expect("readable");
        assert!(text.expose().ends_with("EntityPath=x"));
    }
}
