//! An ordered header list (RFC 9110 §5): keeps duplicates and order, looks names up
//! case-insensitively, and stores every field in two flat buffers rather than one allocation
//! per name and value.

use std::fmt;

use super::syntax::list_elements;

/// Header names whose values are credentials; `Debug` never prints their values (protocol §2.5,
/// §3.1).
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "servicebusauthorization",
    "cookie",
    "set-cookie",
];

/// Where one field ends in the flat buffers; it starts where the previous one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    name_end: usize,
    value_end: usize,
}

/// Header fields in wire order, duplicates kept. Names are text (they are tokens on the wire);
/// values are bytes, since HTTP allows obs-text in them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    names: String,
    values: Vec<u8>,
    spans: Vec<Span>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `fields` fields whose names total `name_bytes` and whose
    /// values total `value_bytes`.
    pub fn with_capacity(fields: usize, name_bytes: usize, value_bytes: usize) -> Self {
        Self {
            names: String::with_capacity(name_bytes),
            values: Vec::with_capacity(value_bytes),
            spans: Vec::with_capacity(fields),
        }
    }

    /// Appends a field. Nothing is validated here; the head writers validate on output.
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.names.push_str(name);
        self.values.extend_from_slice(value.as_ref());
        self.spans.push(Span {
            name_end: self.names.len(),
            value_end: self.values.len(),
        });
    }

    /// How many fields there are (duplicates counted).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every field as `(name, value)`, in wire order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            headers: self,
            index: 0,
            name_start: 0,
            value_start: 0,
        }
    }

    /// The field at `index` in wire order.
    pub fn field(&self, index: usize) -> Option<(&str, &[u8])> {
        let span = self.spans.get(index)?;
        let (name_start, value_start) = match index.checked_sub(1) {
            Some(prev) => {
                let prev = self.spans[prev];
                (prev.name_end, prev.value_end)
            }
            None => (0, 0),
        };
        // Invariant: spans only ever mark the ends of whole `&str`s pushed into `names`, so
        // both bounds are char boundaries and the slicing cannot panic.
        Some((
            &self.names[name_start..span.name_end],
            &self.values[value_start..span.value_end],
        ))
    }

    /// The value of the first field called `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The values of every field called `name` (ASCII case-insensitive), in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// How many fields are called `name`.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// Whether any field is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the comma-separated lists in the fields called `name` hold `token`, compared
    /// ASCII case-insensitively (e.g. `Connection: keep-alive, Upgrade` holds `upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(list_elements)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }
}

impl fmt::Debug for Headers {
    /// Prints names and values, except values of credential headers, which print as
    /// `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in self.iter() {
            if SENSITIVE.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                list.entry(&(name, crate::secret::REDACTED));
            } else {
                list.entry(&(name, String::from_utf8_lossy(value)));
            }
        }
        list.finish()
    }
}

/// Iterator over `(name, value)` pairs of [`Headers`], in wire order. It keeps where the next
/// field starts, so each step reads one span: every lookup by name walks the fields this way.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    headers: &'a Headers,
    index: usize,
    /// Where the field at `index` starts in `names` and in `values`.
    name_start: usize,
    value_start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let span = *self.headers.spans.get(self.index)?;
        // Spans only ever mark the ends of whole `&str`s pushed into `names`, so both bounds
        // are char boundaries and `get` finds the field.
        let name = self.headers.names.get(self.name_start..span.name_end)?;
        let value = self.headers.values.get(self.value_start..span.value_end)?;
        self.index += 1;
        self.name_start = span.name_end;
        self.value_start = span.value_end;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.headers.len().saturating_sub(self.index);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.push(name.as_ref(), value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Headers {
        [
            ("Host", "example.com"),
            ("Accept", "text/html"),
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("0", "Sec-WebSocket-Extensions: permessage-deflate"),
            ("Empty", ""),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn keeps_order_and_duplicates() {
        let h = sample();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "Accept", "X-Dup", "x-dup", "0", "Empty"]);
        assert_eq!(h.len(), 6);
        assert_eq!(h.iter().len(), 6);
        assert!(!h.is_empty());
        assert_eq!(h.field(5), Some(("Empty", &b""[..])));
        assert_eq!(h.field(6), None);
    }

    #[test]
    fn the_iterator_yields_each_field_as_looked_up_by_index() {
        let h: Headers = [
            ("", "empty name"),
            ("Host", "example.com"),
            ("Empty", ""),
            ("Ünï", "non-ASCII name"),
            ("X", "\u{e9}t\u{e9}"),
        ]
        .into_iter()
        .collect();
        let by_index: Vec<_> = (0..h.len()).map_while(|i| h.field(i)).collect();
        assert_eq!(h.iter().collect::<Vec<_>>(), by_index);
        assert_eq!(by_index.len(), 5);
        let mut iter = h.iter();
        assert_eq!(iter.nth(3), Some(("Ünï", &b"non-ASCII name"[..])));
        assert_eq!(iter.len(), 1);
    }

    #[test]
    fn looks_names_up_case_insensitively() {
        let h = sample();
        assert_eq!(h.get("HOST"), Some(&b"example.com"[..]));
        assert_eq!(h.get("x-DUP"), Some(&b"one"[..]));
        let all: Vec<&[u8]> = h.get_all("X-Dup").collect();
        assert_eq!(all, [&b"one"[..], &b"two"[..]]);
        assert_eq!(h.count("x-dup"), 2);
        assert!(h.contains("0"));
        assert!(!h.contains("missing"));
        assert_eq!(h.get("Empty"), Some(&b""[..]));
    }

    #[test]
    fn finds_tokens_across_lists_and_fields() {
        let h: Headers = [("Connection", "keep-alive"), ("connection", " Upgrade ,x")]
            .into_iter()
            .collect();
        assert!(h.has_token("connection", "upgrade"));
        assert!(h.has_token("Connection", "KEEP-ALIVE"));
        assert!(!h.has_token("Connection", "close"));
        assert!(!h.has_token("Upgrade", "websocket"));
    }

    #[test]
    fn empty_list_is_empty() {
        let h = Headers::with_capacity(4, 16, 64);
        assert!(h.is_empty());
        assert_eq!(h.iter().next(), None);
        assert_eq!(h, Headers::new());
    }

    #[test]
    fn debug_redacts_credentials() {
        let h: Headers = [
            (
                "ServiceBusAuthorization",
                "SharedAccessSignature sr=a&sig=SECRET",
            ),
            ("authorization", "Bearer SECRET"),
            ("Cookie", "SECRET"),
            ("Accept", "text/plain"),
        ]
        .into_iter()
        .collect();
        let printed = format!("{h:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("text/plain"), "{printed}");
        assert!(printed.contains(crate::secret::REDACTED), "{printed}");
    }
}
