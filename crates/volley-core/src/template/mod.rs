//! Request templates: the URL, headers and JSON body of the spec, compiled once per job and
//! rendered once per record.
//!
//! A record value can never change the request's scheme, host, port or path structure: a
//! placeholder stands only in a path segment or a query value, and its value is
//! percent-encoded as one segment (or one query value) on every render.

mod body;
mod headers;
mod parts;
mod url;

pub use body::BodyTemplate;
pub use headers::{HeaderTemplate, RenderedHeader};
pub use parts::RecordView;
pub use url::UrlTemplate;

/// Longest value a placeholder accepts, in bytes. Longer values fail their record instead of
/// producing a multi-megabyte URL.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Why one record's request could not be rendered. The record fails with this reason and no
/// request is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The record has no such field.
    #[error("missing field '{0}'")]
    MissingField(String),
    /// The field is null, an array or an object where a text value is needed.
    #[error("field '{0}' is {1}, not a string or number")]
    NotScalar(String, &'static str),
    /// A whole path segment would be `.` or `..` (or empty), which would change the path.
    #[error("invalid path segment '{0}' from field '{1}'")]
    InvalidPathSegment(String, String),
    /// A value is longer than [`MAX_VALUE_BYTES`].
    #[error("value of field '{0}' is too long ({1} bytes, limit {MAX_VALUE_BYTES})")]
    ValueTooLong(String, usize),
    /// A rendered header value holds bytes HTTP forbids (CR, LF, other controls).
    #[error("header '{0}' value contains control characters")]
    BadHeaderValue(String),
}

/// Compiles every template of a request spec, naming the spec key on error.
pub struct RequestTemplate {
    /// The URL.
    pub url: UrlTemplate,
    /// The headers, with `${env:VAR}` already resolved.
    pub headers: Vec<HeaderTemplate>,
    /// The JSON body, if any.
    pub body: Option<BodyTemplate>,
}

impl RequestTemplate {
    /// The `${env:VAR}` values its headers hold.
    pub fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .headers
            .iter()
            .flat_map(|h| h.secrets().iter().cloned())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Compiles the templates of `request`, resolving `${env:VAR}` with `env`.
    ///
    /// # Errors
    /// A [`crate::SpecError`] naming `request.url`, `request.headers.NAME` or `request.body`.
    pub fn compile(
        request: &crate::RequestSpec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::SpecError> {
        let url = UrlTemplate::compile(&request.url)
            .map_err(|m| crate::SpecError::new("request.url", m))?;
        let mut headers = Vec::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let header = HeaderTemplate::compile(name, value, env)
                .map_err(|m| crate::SpecError::new(format!("request.headers.{name}"), m))?;
            headers.push(header);
        }
        let body = request
            .body
            .as_ref()
            .map(BodyTemplate::compile)
            .transpose()
            .map_err(|m| crate::SpecError::new("request.body", m))?;
        Ok(Self { url, headers, body })
    }

    /// Names of every record field the templates read (for previews and validation).
    pub fn fields(&self) -> Vec<String> {
        let mut out = self.url.fields();
        for header in &self.headers {
            out.extend(header.fields());
        }
        if let Some(body) = &self.body {
            out.extend(body.fields());
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The process environment, for [`RequestTemplate::compile`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests;
