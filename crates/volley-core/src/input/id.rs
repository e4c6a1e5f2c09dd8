//! Finds the id field of a JSON object while validating the whole object the way the worker
//! will parse it, without building a value tree. `IgnoredAny` is not enough: it skips number
//! syntax without converting (`1e999` passes, then fails in the worker), and a key that is
//! one of serde_json's private tokens (`$serde_json::private::RawValue`) is read as a marker
//! by the worker's parser. Either would make the whole chunk undecodable, so such a record is
//! refused here with its line.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What the id field held.
pub(crate) enum IdValue {
    /// A usable id.
    Id(String),
    /// A value that cannot be an id; names its kind.
    Bad(&'static str),
}

/// Walks an object, returning its id field's value (the first occurrence when a key repeats).
pub(crate) struct ObjectProbe<'a> {
    pub(crate) id_field: &'a str,
}

impl<'de> DeserializeSeed<'de> for ObjectProbe<'_> {
    type Value = Option<IdValue>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectProbe<'_> {
    type Value = Option<IdValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            check_key(&key)?;
            if id.is_none() && key == self.id_field {
                id = Some(map.next_value_seed(IdSeed)?);
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(id)
    }
}

struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = IdValue;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = IdValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IdValue, E> {
        Ok(IdValue::Id(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdValue, E> {
        Ok(IdValue::Id(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdValue, E> {
        Ok(IdValue::Id(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdValue, E> {
        Ok(IdValue::Bad(
            "a number that is not an integer (ids beyond 2^64 must be strings)",
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdValue, E> {
        Ok(IdValue::Bad("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<IdValue, E> {
        Ok(IdValue::Bad("null"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<IdValue, A::Error> {
        CheckedVisitor.visit_seq(seq)?;
        Ok(IdValue::Bad("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IdValue, A::Error> {
        CheckedVisitor.visit_map(map)?;
        Ok(IdValue::Bad("an object"))
    }
}

/// serde_json reads an object whose key is one of these as a private marker, not as data.
const RESERVED_KEYS: [&str; 3] = [
    "$serde_json::private::RawValue",
    "$serde_json::private::Number",
    "$serde_json::private::Map",
];

fn check_key<E: de::Error>(key: &str) -> Result<(), E> {
    if RESERVED_KEYS.contains(&key) || key.starts_with("$serde_json::private::") {
        return Err(E::custom(format!(
            "field name '{key}' is reserved by the JSON parser"
        )));
    }
    Ok(())
}

/// Any JSON value, checked as the worker's parser will read it, and dropped.
struct Checked;

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            check_key(&key)?;
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// Names the kind of a JSON text from its first byte, for "expected an object" messages.
pub(crate) fn kind_of(first: u8) -> &'static str {
    match first {
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => "something else",
    }
}
