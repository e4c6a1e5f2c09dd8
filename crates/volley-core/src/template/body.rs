use super::TemplateError;
use super::parts::{Part, RecordView, parse_parts, part_fields};
use serde_json::{Map, Value};

/// A compiled JSON body template. Values are built as JSON values, never by string
/// concatenation, so a record value cannot inject JSON structure. A string that is exactly
/// `"{f}"` passes f's JSON value with its type; other strings interpolate as text.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    /// A value without placeholders.
    Literal(Value),
    /// Exactly `"{f}"`: the field's JSON value.
    Field(String),
    /// A string with placeholders.
    Text(Vec<TextPart>),
    /// An array of templates.
    Array(Vec<BodyTemplate>),
    /// An object of templates.
    Object(Vec<(String, BodyTemplate)>),
}

/// A piece of an interpolated string.
#[derive(Debug, Clone)]
pub struct TextPart(Part);

impl BodyTemplate {
    /// Compiles a JSON value into a template.
    ///
    /// # Errors
    /// A message for the `request.body` key.
    pub fn compile(value: &Value) -> Result<Self, String> {
        Ok(match value {
            Value::String(s) => {
                let parts = parse_parts(s)?;
                match parts.as_slice() {
                    [] => BodyTemplate::Literal(Value::String(String::new())),
                    [Part::Field(f)] => BodyTemplate::Field(f.clone()),
                    [Part::Literal(l)] => BodyTemplate::Literal(Value::String(l.clone())),
                    _ => BodyTemplate::Text(parts.into_iter().map(TextPart).collect()),
                }
            }
            Value::Array(items) => {
                BodyTemplate::Array(items.iter().map(Self::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => BodyTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::compile(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => BodyTemplate::Literal(other.clone()),
        })
    }

    /// Renders the body for one record.
    ///
    /// # Errors
    /// A [`TemplateError`] for a missing field.
    pub fn render(&self, record: &RecordView<'_>) -> Result<Value, TemplateError> {
        Ok(match self {
            BodyTemplate::Literal(v) => v.clone(),
            BodyTemplate::Field(f) => record
                .lookup(f)
                .ok_or_else(|| TemplateError::MissingField(f.clone()))?
                .into_owned(),
            BodyTemplate::Text(parts) => {
                let mut s = String::new();
                for TextPart(part) in parts {
                    match part {
                        Part::Literal(l) => s.push_str(l),
                        Part::Field(f) => s.push_str(&record.text(f)?),
                    }
                }
                Value::String(s)
            }
            BodyTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(record))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, t) in entries {
                    map.insert(k.clone(), t.render(record)?);
                }
                Value::Object(map)
            }
        })
    }

    /// Field names the body reads.
    pub fn fields(&self) -> Vec<String> {
        match self {
            BodyTemplate::Literal(_) => Vec::new(),
            BodyTemplate::Field(f) => vec![f.clone()],
            BodyTemplate::Text(parts) => {
                let parts: Vec<Part> = parts.iter().map(|p| p.0.clone()).collect();
                part_fields(&parts).collect()
            }
            BodyTemplate::Array(items) => items.iter().flat_map(Self::fields).collect(),
            BodyTemplate::Object(entries) => entries.iter().flat_map(|(_, t)| t.fields()).collect(),
        }
    }
}
