//! The secrecy oracle: values given to `SharedAccessKey=` / `SharedAccessSignature=` in a text
//! must never show up in an error message about that text.

/// The values that follow `SharedAccessKey=` or `SharedAccessSignature=` (case-insensitive) in
/// `text`, each up to the next `;`, quote, or line end, trimmed. Only values of 6+ characters
/// that occur nowhere else in the text are returned: a short value, or one that also appears
/// elsewhere (as a key name, say), could be quoted for another, legitimate reason.
pub fn secret_values(text: &str) -> Vec<String> {
    const MARKERS: [&str; 2] = ["sharedaccesskey=", "sharedaccesssignature="];
    let lower = text.to_ascii_lowercase();
    let mut values = Vec::new();
    for marker in MARKERS {
        let mut from = 0;
        while let Some(at) = lower[from..].find(marker) {
            let start = from + at + marker.len();
            let end = text[start..]
                .find([';', '"', '\'', '\n', '\r'])
                .map_or(text.len(), |len| start + len);
            let value = text[start..end].trim();
            if value.chars().count() >= 6 {
                values.push(value.to_owned());
            }
            from = start;
        }
    }
    values.retain(|value| text.matches(value.as_str()).count() == 1);
    values
}

/// Panics when the error text `message_of(text)` quotes a secret value of `text`. A value the
/// text shows only by coincidence (the message's own wording, which a fuzzer learns to insert)
/// is told apart by parsing again with the value replaced: it is a leak only when the message
/// then no longer contains it.
pub fn assert_secrets_not_quoted(
    text: &str,
    what: &str,
    message_of: impl Fn(&str) -> Option<String>,
) {
    let Some(message) = message_of(text) else {
        return;
    };
    for value in secret_values(text) {
        if !message.contains(value.as_str()) {
            continue;
        }
        let canary: String = value
            .chars()
            .map(|c| if c == 'Z' { 'Y' } else { 'Z' })
            .collect();
        let without = message_of(&text.replacen(value.as_str(), &canary, 1)).unwrap_or_default();
        assert!(
            without.contains(value.as_str()),
            "{what} quotes the secret value {value:?}: {message}"
        );
    }
}

/// Panics when `message` (an error's Display or Debug text) contains one of `values`.
pub fn assert_no_secret(message: &str, values: &[String], what: &str) {
    for value in values {
        assert!(
            !message.contains(value.as_str()),
            "{what} quotes the secret value {value:?}: {message}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_key_and_signature_values() {
        let text = "Endpoint=sb://x/;SharedAccessKeyName=k;sharedaccesskey= abcdefgh ;\
                    SharedAccessSignature=SharedAccessSignature sr=x\"";
        assert_eq!(
            secret_values(text),
            ["abcdefgh", "SharedAccessSignature sr=x"]
        );
    }

    #[test]
    fn skips_short_values_and_values_found_elsewhere() {
        assert!(secret_values("SharedAccessKey=abc").is_empty());
        assert!(secret_values("workers;SharedAccessKey=workers").is_empty());
    }

    #[test]
    #[should_panic(expected = "quotes the secret value")]
    fn a_quoted_value_fails() {
        assert_no_secret("bad key abcdefgh", &["abcdefgh".to_owned()], "error");
    }
}
