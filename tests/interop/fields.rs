//! Typed access to the fields of the scripts' JSON output lines; a missing or mistyped field
//! fails the test naming the field and the line.

use serde_json::Value;

pub(crate) fn str_field<'a>(line: &'a Value, key: &str) -> &'a str {
    line.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key:?} is not a string in {line}"))
}

pub(crate) fn u64_field(line: &Value, key: &str) -> u64 {
    line.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key:?} is not an unsigned integer in {line}"))
}

pub(crate) fn usize_of(len: u64) -> usize {
    usize::try_from(len).expect("test sizes fit in usize")
}
