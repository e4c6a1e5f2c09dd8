//! Finds the id field of a JSON object while validating the whole object, without building a
//! value tree: other fields are skipped with `IgnoredAny`.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
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
            if id.is_none() && key == self.id_field {
                id = Some(map.next_value_seed(IdSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
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
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdValue, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(IdValue::Bad("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdValue, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(IdValue::Bad("an object"))
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
