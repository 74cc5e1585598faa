//! Which keys a configuration table accepts, asked of the serde structs themselves.
//!
//! [`expected_keys`] walks `T`'s `Deserialize` implementation along a key path (map keys and
//! array indexes) with a probing deserializer that holds no data. When it reaches a struct it
//! records the field names serde passes to `deserialize_struct` and stops. So an unknown key is
//! recognised, and the accepted keys listed, from the types alone, not from an error's wording.
//! A path through a value whose `Deserialize` is hand-written (not a derived struct) yields
//! `None`.

use std::cell::Cell;

use serde::de::value::{Error as ProbeError, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Error as _, IntoDeserializer, Visitor};
use serde_path_to_error::Segment;

/// The keys of the struct at `path` inside `T`, if a derived struct is there.
pub(super) fn expected_keys<T: DeserializeOwned>(
    path: &[&Segment],
) -> Option<&'static [&'static str]> {
    let found = Cell::new(None);
    // The probe always ends in an error: it has no data to give.
    let _ = T::deserialize(Probe {
        path,
        found: &found,
    });
    found.get()
}

/// A deserializer standing for the value at `path` (relative to where it is asked).
#[derive(Clone, Copy)]
struct Probe<'a> {
    path: &'a [&'a Segment],
    found: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'a> Probe<'a> {
    /// Hands the visitor a one-entry table or a one-element array leading to the next segment.
    fn step<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let Some((segment, rest)) = self.path.split_first() else {
            return Err(ProbeError::custom("end of the path"));
        };
        let next = Probe { path: rest, ..self };
        match segment {
            Segment::Map { key } => {
                visitor.visit_map(MapDeserializer::new(std::iter::once((key.as_str(), next))))
            }
            Segment::Seq { .. } => visitor.visit_seq(SeqDeserializer::new(std::iter::once(next))),
            Segment::Enum { .. } | Segment::Unknown => Err(ProbeError::custom("not a table")),
        }
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.step(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        if self.path.is_empty() {
            self.found.set(Some(fields));
            return Err(ProbeError::custom("found"));
        }
        self.step(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'de, 'a> IntoDeserializer<'de, ProbeError> for Probe<'a> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    fn keys_at(path: &[Segment]) -> Option<&'static [&'static str]> {
        let path: Vec<&Segment> = path.iter().collect();
        expected_keys::<RawConfig>(&path)
    }

    fn map(key: &str) -> Segment {
        Segment::Map {
            key: key.to_owned(),
        }
    }

    #[test]
    fn the_top_level_keys() {
        let keys = keys_at(&[]).expect("a struct");
        assert!(keys.contains(&"runtime") && keys.contains(&"hybrid_connection"));
    }

    #[test]
    fn a_table_and_an_element_of_an_array_of_tables() {
        assert_eq!(keys_at(&[map("runtime")]), Some(&["workers"][..]));
        let keys = keys_at(&[map("hybrid_connection"), Segment::Seq { index: 3 }]).expect("struct");
        assert!(keys.contains(&"stream_ping_interval") && keys.contains(&"target"));
    }

    #[test]
    fn not_a_struct() {
        assert_eq!(keys_at(&[map("runtime"), map("workers")]), None);
        assert_eq!(keys_at(&[map("include")]), None);
        assert_eq!(keys_at(&[map("no_such_table")]), None);
    }
}
