//! The header maps carried inside control-channel JSON: `connectHeaders` (protocol §4.3),
//! `requestHeaders` (protocol §4.4) and `responseHeaders` (protocol §4.5).
//!
//! On the wire each map is a JSON object of string to string. [`JsonHeaders`] keeps the entries in
//! the order they were received or added, so what the sender sent is what the listener sees, and
//! it looks names up case-insensitively as HTTP requires (RFC 9110 §5.1). A JSON object that
//! repeats a name (RFC 8259 §4 only says names SHOULD be unique) keeps every entry, in order.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ordered, case-insensitively searched map of header name to header value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonHeaders {
    entries: Vec<(String, String)>,
}

impl JsonHeaders {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry at the end, even when the name is already present.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Adds `value` under `name`; when the name is already present (compared case-insensitively)
    /// the value is appended to the existing entry after `separator`, keeping the first entry's
    /// name spelling and position (protocol §4.4: multi-value headers become one joined string).
    pub fn append_joined(&mut self, name: &str, value: &str, separator: &str) {
        match self.position(name) {
            Some(index) => {
                let existing = &mut self.entries[index].1;
                existing.push_str(separator);
                existing.push_str(value);
            }
            None => self.push(name, value),
        }
    }

    /// The value of the first entry named `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name)
            .map(|index| self.entries[index].1.as_str())
    }

    /// Whether an entry named `name` exists (compared case-insensitively).
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The entries in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(existing, _)| existing.eq_ignore_ascii_case(name))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for JsonHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            entries: iter
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }
}

impl Serialize for JsonHeaders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (name, value) in &self.entries {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for JsonHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(JsonHeadersVisitor)
    }
}

struct JsonHeadersVisitor;

impl<'de> Visitor<'de> for JsonHeadersVisitor {
    type Value = JsonHeaders;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of header name to string value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonHeaders, A::Error> {
        let mut headers = JsonHeaders {
            entries: Vec::with_capacity(map.size_hint().unwrap_or(0)),
        };
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            headers.entries.push((name, value));
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_is_case_insensitive_and_returns_the_first_entry() {
        let mut headers = JsonHeaders::new();
        headers.push("Content-Type", "text/plain");
        headers.push("content-type", "application/json");
        assert_eq!(headers.get("CONTENT-TYPE"), Some("text/plain"));
        assert!(headers.contains("content-TYPE"));
        assert_eq!(headers.get("Accept"), None);
        assert!(!headers.contains("Accept"));
    }

    #[test]
    fn append_joined_extends_the_first_entry_in_place() {
        let mut headers = JsonHeaders::new();
        headers.append_joined("X-Custom", "one", ", ");
        headers.append_joined("Accept", "*/*", ", ");
        headers.append_joined("x-custom", "two", ", ");
        let entries: Vec<_> = headers.iter().collect();
        assert_eq!(entries, [("X-Custom", "one, two"), ("Accept", "*/*")]);
    }

    #[test]
    fn serialises_as_an_object_in_insertion_order() {
        let headers: JsonHeaders = [("Zeta", "1"), ("Alpha", "2")].into_iter().collect();
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"{"Zeta":"1","Alpha":"2"}"#
        );
    }

    #[test]
    fn deserialises_in_wire_order_keeping_repeated_names() {
        let headers: JsonHeaders =
            serde_json::from_str(r#"{"Zeta":"1","Alpha":"2","zeta":"3"}"#).unwrap();
        let entries: Vec<_> = headers.iter().collect();
        assert_eq!(entries, [("Zeta", "1"), ("Alpha", "2"), ("zeta", "3")]);
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn non_string_values_are_rejected() {
        let err = serde_json::from_str::<JsonHeaders>(r#"{"Content-Length":5}"#).unwrap_err();
        assert!(err.is_data(), "{err}");
        let err = serde_json::from_str::<JsonHeaders>(r#"["a","b"]"#).unwrap_err();
        assert!(err.is_data(), "{err}");
    }

    #[test]
    fn empty_object_is_an_empty_map() {
        let headers: JsonHeaders = serde_json::from_str("{}").unwrap();
        assert!(headers.is_empty());
    }
}
