use super::TemplateError;
use super::parts::{Part, RecordView, parse_parts, part_fields};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt::Write as _;

/// Everything but RFC 3986 unreserved characters is encoded, so a value is always exactly one
/// path segment or one query value: `/ ? # % @ : ; & = +`, spaces and controls included.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A compiled URL template: a fixed origin, then path segments and query pairs that may hold
/// placeholders.
#[derive(Debug, Clone)]
pub struct UrlTemplate {
    origin: String,
    segments: Vec<Vec<Part>>,
    query: Vec<(String, Vec<Part>)>,
    trailing_slash: bool,
}

impl UrlTemplate {
    /// Compiles a URL template.
    ///
    /// # Errors
    /// A message for the `request.url` key: bad scheme, placeholder in the host, fragment,
    /// malformed placeholder.
    pub fn compile(template: &str) -> Result<Self, String> {
        if template.contains("${") {
            return Err("${env:...} secrets are only allowed in header values".into());
        }
        let Some((scheme, rest)) = template.split_once("://") else {
            return Err(format!(
                "'{template}' has no scheme (expected http:// or https://)"
            ));
        };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "scheme '{scheme}' is not supported (expected http or https)"
            ));
        }
        if template.contains('#') {
            return Err("a fragment ('#') is not allowed".into());
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.contains('{') || authority.contains('}') {
            return Err("placeholder not allowed in host".into());
        }
        let origin = format!("{}://{authority}", scheme.to_ascii_lowercase());
        let parsed = url::Url::parse(&origin).map_err(|e| format!("invalid host: {e}"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let after = &rest[authority_end..];
        let (path, query) = match after.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (after, None),
        };
        let mut segments = Vec::new();
        let trailing_slash = path.len() > 1 && path.ends_with('/');
        for seg in path.split('/').skip(1) {
            if seg.is_empty() && trailing_slash {
                continue;
            }
            segments.push(parse_parts(seg)?);
        }
        let mut pairs = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key.contains('{') {
                return Err(format!("placeholder not allowed in query key '{key}'"));
            }
            pairs.push((key.to_string(), parse_parts(value)?));
        }
        Ok(Self {
            origin,
            segments,
            query: pairs,
            trailing_slash,
        })
    }

    /// Renders the URL for one record.
    ///
    /// # Errors
    /// A [`TemplateError`] when a field is missing, not a scalar, too long, or would form a
    /// `.`/`..` or empty path segment.
    pub fn render(&self, record: &RecordView<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.origin.len() + 64);
        out.push_str(&self.origin);
        for seg in &self.segments {
            out.push('/');
            if let [Part::Field(name)] = seg.as_slice() {
                let value = record.text(name)?;
                if value.is_empty() || value == "." || value == ".." {
                    return Err(TemplateError::InvalidPathSegment(
                        value.into_owned(),
                        name.clone(),
                    ));
                }
            }
            write_parts(&mut out, seg, record)?;
        }
        if self.trailing_slash {
            out.push('/');
        }
        for (i, (key, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(key);
            out.push('=');
            write_parts(&mut out, value, record)?;
        }
        Ok(out)
    }

    /// The fixed `scheme://host:port` part.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Field names the URL reads.
    pub fn fields(&self) -> Vec<String> {
        let mut out: Vec<String> = self.segments.iter().flat_map(|s| part_fields(s)).collect();
        out.extend(self.query.iter().flat_map(|(_, v)| part_fields(v)));
        out
    }
}

fn write_parts(
    out: &mut String,
    parts: &[Part],
    record: &RecordView<'_>,
) -> Result<(), TemplateError> {
    for part in parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Field(name) => {
                let value = record.text(name)?;
                // Writing to a String cannot fail.
                let _ = write!(out, "{}", utf8_percent_encode(&value, COMPONENT));
            }
        }
    }
    Ok(())
}
