use super::{MAX_VALUE_BYTES, TemplateError};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    Field(String),
}

/// Splits `text` into literals and `{field}` placeholders; `{{` and `}}` are literal braces.
pub(crate) fn parse_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let rest = &text[at + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(format!("unclosed placeholder '{}'", &text[at..]));
                };
                let name = &rest[..end];
                if name.is_empty() {
                    return Err("empty placeholder '{}'".into());
                }
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    return Err(format!(
                        "invalid placeholder '{{{name}}}' (names use letters, digits, '_', '-', '.')"
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(name.to_string()));
                for _ in 0..=name.chars().count() {
                    chars.next();
                }
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' in '{text}' (write '}}}}' for a brace)"
                ));
            }
            _ => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// What a template sees of one record.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// The record id.
    pub id: &'a str,
    /// The input line the record starts on.
    pub line: u64,
    /// The record's fields.
    pub data: &'a Map<String, Value>,
}

impl<'a> RecordView<'a> {
    /// The JSON value of a field: a top-level field, then a dotted path (`user.email`);
    /// `_id` and `_line` are the record's id and line.
    pub fn lookup(&self, name: &str) -> Option<Cow<'a, Value>> {
        if let Some(v) = self.data.get(name) {
            return Some(Cow::Borrowed(v));
        }
        match name {
            "_id" => return Some(Cow::Owned(Value::String(self.id.to_string()))),
            "_line" => return Some(Cow::Owned(Value::from(self.line))),
            _ => {}
        }
        let mut segments = name.split('.');
        let mut current = self.data.get(segments.next()?)?;
        for seg in segments {
            current = match current {
                Value::Object(map) => map.get(seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(Cow::Borrowed(current))
    }

    /// A field's value as text, for URLs and headers.
    pub(crate) fn text(&self, name: &str) -> Result<Cow<'a, str>, TemplateError> {
        let value = self
            .lookup(name)
            .ok_or_else(|| TemplateError::MissingField(name.to_string()))?;
        let text: Cow<'a, str> = match value {
            Cow::Borrowed(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Cow::Owned(Value::String(s)) => Cow::Owned(s),
            other => Cow::Owned(scalar_text(name, other.as_ref())?),
        };
        if text.len() > MAX_VALUE_BYTES {
            return Err(TemplateError::ValueTooLong(name.to_string(), text.len()));
        }
        Ok(text)
    }
}

fn scalar_text(name: &str, value: &Value) -> Result<String, TemplateError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(TemplateError::NotScalar(name.into(), "null")),
        Value::Array(_) => Err(TemplateError::NotScalar(name.into(), "an array")),
        Value::Object(_) => Err(TemplateError::NotScalar(name.into(), "an object")),
    }
}

/// Field names used by a list of parts.
pub(crate) fn part_fields(parts: &[Part]) -> impl Iterator<Item = String> + '_ {
    parts.iter().filter_map(|p| match p {
        Part::Field(f) => Some(f.clone()),
        Part::Literal(_) => None,
    })
}
