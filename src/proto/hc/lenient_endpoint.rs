//! Reading `remoteEndpoint` (protocol §4.3, §4.4) leniently, in one pass: the member is
//! informational, so a value of the wrong shape reads as absent instead of failing the message.
//!
//! The contract is that of reading the member as any JSON value and then converting that value
//! to a [`RemoteEndpoint`]: every JSON value is accepted (nesting limited as for any value), and
//! the result is `Some` exactly when the conversion would succeed — an object whose `address` is
//! a string or `null` and whose `port` is an integer 0–65535 or `null` (a repeated member counts
//! by its last occurrence, other members ignored), or an array of at most those two in that
//! order; anything else is `None`. No intermediate JSON tree is built.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::messages::RemoteEndpoint;

/// Reads `remoteEndpoint` as described in the module docs.
pub(crate) fn lenient_endpoint<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RemoteEndpoint>, D::Error> {
    deserializer.deserialize_any(EndpointVisitor)
}

/// One member's reading: a usable value, or one that makes the whole endpoint absent.
enum Slot<T> {
    Good(T),
    Bad,
}

impl<T> Slot<T> {
    fn ok(self) -> Option<T> {
        match self {
            Self::Good(value) => Some(value),
            Self::Bad => None,
        }
    }
}

struct EndpointVisitor;

impl<'de> Visitor<'de> for EndpointVisitor {
    type Value = Option<RemoteEndpoint>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let address = seq.next_element_seed(AddressSeed)?;
        let port = match address {
            Some(_) => seq.next_element_seed(PortSeed)?,
            None => None,
        };
        let mut extra = false;
        if port.is_some() {
            while seq.next_element::<Skip>()?.is_some() {
                extra = true;
            }
        }
        if extra {
            return Ok(None);
        }
        Ok(endpoint(
            address.unwrap_or(Slot::Good(String::new())),
            port.unwrap_or(Slot::Good(0)),
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut address = Slot::Good(String::new());
        let mut port = Slot::Good(0);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Address => address = map.next_value_seed(AddressSeed)?,
                Key::Port => port = map.next_value_seed(PortSeed)?,
                Key::Other => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(endpoint(address, port))
    }
}

fn endpoint(address: Slot<String>, port: Slot<u16>) -> Option<RemoteEndpoint> {
    Some(RemoteEndpoint {
        address: address.ok()?,
        port: port.ok()?,
    })
}

/// A member name of the endpoint object.
enum Key {
    Address,
    Port,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(match name {
            "address" => Key::Address,
            "port" => Key::Port,
            _ => Key::Other,
        })
    }
}

/// `address`: a string, or `null` (read as empty).
struct AddressSeed;

impl<'de> DeserializeSeed<'de> for AddressSeed {
    type Value = Slot<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AddressSeed {
    type Value = Slot<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Slot::Good(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Slot::Good(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Good(String::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Good(String::new()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Slot::Bad)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Slot::Bad)
    }
}

/// `port`: an integer 0–65535, or `null` (read as 0).
struct PortSeed;

impl<'de> DeserializeSeed<'de> for PortSeed {
    type Value = Slot<u16>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PortSeed {
    type Value = Slot<u16>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(u16::try_from(value).map_or(Slot::Bad, Slot::Good))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(u16::try_from(value).map_or(Slot::Bad, Slot::Good))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Good(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Good(0))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Slot::Bad)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Slot::Bad)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Slot::Bad)
    }
}

/// Any JSON value, read and dropped. Unlike [`serde::de::IgnoredAny`] it goes through
/// `deserialize_any`, so it is held to the same nesting limit as reading the value itself.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading this module replaces: any JSON value, then converted.
    fn through_value(text: &str) -> Result<Option<RemoteEndpoint>, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(serde_json::from_value(value).ok())
    }

    fn streamed(text: &str) -> Result<Option<RemoteEndpoint>, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let endpoint = lenient_endpoint(&mut deserializer).map_err(|e| e.to_string())?;
        deserializer.end().map_err(|e| e.to_string())?;
        Ok(endpoint)
    }

    #[test]
    fn reads_every_value_as_the_value_conversion_does() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_member = format!(r#"{{"x":{}{}}}"#, "{\"a\":".repeat(130), "}".repeat(130));
        let cases = [
            r#"{"address":"203.0.113.7","port":51234}"#,
            r#"{"address":"203.0.113.7"}"#,
            r#"{"port":51234}"#,
            r#"{}"#,
            r#"{"address":null,"port":null,"family":"v4"}"#,
            r#"{"address":"a","address":"b"}"#,
            r#"{"address":1,"address":"b"}"#,
            r#"{"address":"b","address":1}"#,
            r#"{"port":"not a number"}"#,
            r#"{"port":65535}"#,
            r#"{"port":65536}"#,
            r#"{"port":-1}"#,
            r#"{"port":-0}"#,
            r#"{"port":5.0}"#,
            r#"{"port":1e2}"#,
            r#"{"port":true}"#,
            r#"{"port":[1]}"#,
            r#"{"port":{"a":1}}"#,
            r#"{"address":["a"]}"#,
            r#"{"address":{"a":1}}"#,
            r#"{"address":false}"#,
            r#"{"address":"\u00e9\/x","extra":[1,{"b":null}]}"#,
            r#"[]"#,
            r#"["a"]"#,
            r#"["a",1]"#,
            r#"[null,null]"#,
            r#"["a",1,2]"#,
            r#"["a","x"]"#,
            r#"[1,1]"#,
            r#"[[],1]"#,
            r#""203.0.113.7:5""#,
            "5",
            "-5",
            "5.5",
            "true",
            "null",
            r#"{"port":1}trailing"#,
            r#"{"address":"\ud800"}"#,
            &deep,
            &deep_member,
        ];
        for text in cases {
            assert_eq!(streamed(text), through_value(text), "{text}");
        }
    }
}
