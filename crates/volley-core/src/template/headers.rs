use super::TemplateError;
use super::parts::{Part, RecordView, parse_parts, part_fields};
use http::{HeaderName, HeaderValue};

/// A compiled header: a fixed name, and a value that may hold `{field}` placeholders.
/// `${env:VAR}` secrets are resolved at compile time and mark the value sensitive, so it is
/// never printed by `Debug` or a preview.
#[derive(Debug, Clone)]
pub struct HeaderTemplate {
    name: HeaderName,
    parts: Vec<Part>,
    fixed: Option<HeaderValue>,
    sensitive: bool,
    /// The resolved `${env:VAR}` values, to keep them out of stored response bodies.
    secrets: Vec<String>,
}

/// A header ready to send.
#[derive(Debug, Clone)]
pub struct RenderedHeader {
    /// Header name.
    pub name: HeaderName,
    /// Header value; marked sensitive when it holds a secret.
    pub value: HeaderValue,
}

impl HeaderTemplate {
    /// Compiles one header; `env` resolves `${env:VAR}`.
    ///
    /// # Errors
    /// A message for the `request.headers.NAME` key.
    pub fn compile(
        name: &str,
        value: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("'{name}' is not a valid header name"))?;
        let (resolved, secrets) = resolve_env(value, env)?;
        let sensitive = !secrets.is_empty();
        let parts = parse_parts(&resolved)?;
        let fixed = match parts.as_slice() {
            [] => Some(HeaderValue::from_static("")),
            [Part::Literal(text)] => Some(
                HeaderValue::from_str(text)
                    .map_err(|_| "value contains characters not allowed in a header".to_string())?,
            ),
            _ => None,
        };
        let fixed = fixed.map(|mut v| {
            v.set_sensitive(sensitive);
            v
        });
        Ok(Self {
            name,
            parts,
            fixed,
            sensitive,
            secrets,
        })
    }

    /// Renders the header for one record.
    ///
    /// # Errors
    /// A [`TemplateError`] for a missing field or a value with control characters.
    pub fn render(&self, record: &RecordView<'_>) -> Result<RenderedHeader, TemplateError> {
        if let Some(value) = &self.fixed {
            return Ok(RenderedHeader {
                name: self.name.clone(),
                value: value.clone(),
            });
        }
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => text.push_str(l),
                Part::Field(f) => text.push_str(&record.text(f)?),
            }
        }
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| TemplateError::BadHeaderValue(self.name.to_string()))?;
        value.set_sensitive(self.sensitive);
        Ok(RenderedHeader {
            name: self.name.clone(),
            value,
        })
    }

    /// The header name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// Whether the value holds a secret from the environment.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// The secret values the header holds.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Field names the header reads.
    pub fn fields(&self) -> Vec<String> {
        part_fields(&self.parts).collect()
    }
}

/// Replaces `${env:VAR}` by the variable's value; returns the values it put in.
fn resolve_env(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut secrets = Vec::new();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed '${' (write ${env:VAR})".to_string())?;
        let reference = &after[..end];
        let var = reference.strip_prefix("env:").ok_or_else(|| {
            format!("unknown secret source '${{{reference}}}' (write ${{env:VAR}})")
        })?;
        let secret = env(var).ok_or_else(|| format!("environment variable {var} is not set"))?;
        // Escape braces so a secret is never read as a placeholder.
        out.push_str(&secret.replace('{', "{{").replace('}', "}}"));
        secrets.push(secret);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}
