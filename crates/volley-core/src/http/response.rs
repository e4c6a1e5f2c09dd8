use crate::{BodyMode, ErrorKind, RecordError};
use serde_json::{Map, Value};

/// How a response body came out.
pub(crate) enum BodyRead {
    /// The whole body, within the cap.
    Complete(Vec<u8>),
    /// More than the cap arrived (or was announced); reading stopped there.
    TooLarge,
}

/// Reads the body, never holding more than `cap` bytes: an announced length above the cap is
/// refused before reading, and a streamed body is cut as soon as it passes the cap. With
/// `discard` the bytes are counted and dropped as they come (`Complete` holds nothing).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
    discard: bool,
) -> Result<BodyRead, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(BodyRead::TooLarge);
    }
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = response.chunk().await? {
        seen += chunk.len();
        if seen > cap {
            return Ok(BodyRead::TooLarge);
        }
        if !discard {
            body.extend_from_slice(&chunk);
        }
    }
    Ok(BodyRead::Complete(body))
}

/// What secrets become in a stored body.
const REDACTED: &[u8] = b"[redacted]";
/// Shorter secret values are not looked for: they would match ordinary text.
const MIN_SECRET_LEN: usize = 6;

/// The `${env:VAR}` values of a job, to cut out of response bodies before they are stored
/// (an API that echoes request headers would otherwise put a token in the results).
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl Redactor {
    pub(crate) fn new(secrets: &[String]) -> Self {
        let mut finders: Vec<_> = secrets
            .iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            // JSON bodies carry a secret with `"`, `\` or `/` escaped; look for that too.
            .flat_map(|s| {
                let escaped = serde_json::to_string(s).unwrap_or_default();
                let escaped = escaped.trim_matches('"').to_string();
                let slashes = escaped.replace('/', "\\/");
                [s.clone(), escaped, slashes]
            })
            .collect();
        finders.sort_unstable();
        finders.dedup();
        Self {
            finders: finders
                .into_iter()
                .map(|s| memchr::memmem::Finder::new(s.as_bytes()).into_owned())
                .collect(),
        }
    }

    /// The body with every secret replaced by `[redacted]`.
    pub(crate) fn redact<'a>(&self, body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let mut out = std::borrow::Cow::Borrowed(body);
        for finder in &self.finders {
            if finder.find(&out).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut last = 0;
            for at in finder.find_iter(&out) {
                next.extend_from_slice(&out[last..at]);
                next.extend_from_slice(REDACTED);
                last = at + finder.needle().len();
            }
            next.extend_from_slice(&out[last..]);
            out = std::borrow::Cow::Owned(next);
        }
        out
    }
}

/// Turns body bytes into what `result.body` keeps.
pub(crate) fn keep_body(
    mode: BodyMode,
    select: &[String],
    bytes: &[u8],
) -> Result<Option<Value>, RecordError> {
    match mode {
        BodyMode::None => Ok(None),
        BodyMode::Text => Ok(Some(Value::String(
            String::from_utf8_lossy(bytes).into_owned(),
        ))),
        BodyMode::Json => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let value: Value = serde_json::from_slice(bytes).map_err(|e| RecordError {
                kind: ErrorKind::Decode,
                message: format!("response body is not valid JSON: {e}"),
            })?;
            if select.is_empty() {
                return Ok(Some(value));
            }
            let mut kept = Map::with_capacity(select.len());
            for pointer in select {
                if let Some(v) = value.pointer(pointer) {
                    kept.insert(pointer.trim_start_matches('/').to_string(), v.clone());
                }
            }
            Ok(Some(Value::Object(kept)))
        }
    }
}

/// What `result.body` keeps of a failed response (an error status, after the last attempt):
/// the API's reason, whole, since an error body has another shape than the one `select`
/// picks from. A body that is not the JSON `json` asks for is kept as text rather than
/// turning the status into a decode failure; an empty one is not kept.
pub(crate) fn keep_error_body(mode: BodyMode, bytes: &[u8]) -> Option<Value> {
    if mode == BodyMode::None || bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let text = || Value::String(String::from_utf8_lossy(bytes).into_owned());
    match mode {
        BodyMode::Json => Some(serde_json::from_slice(bytes).unwrap_or_else(|_| text())),
        _ => Some(text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_kept_whole_and_never_fail_to_decode() {
        let body = br#"{"error":"email is invalid","field":"email"}"#;
        assert_eq!(
            keep_error_body(BodyMode::Json, body),
            Some(serde_json::json!({"error": "email is invalid", "field": "email"}))
        );
        assert_eq!(
            keep_error_body(BodyMode::Json, b"<h1>502 Bad Gateway</h1>"),
            Some(Value::String("<h1>502 Bad Gateway</h1>".into()))
        );
        assert_eq!(
            keep_error_body(BodyMode::Text, body),
            Some(Value::String(String::from_utf8_lossy(body).into_owned()))
        );
        assert_eq!(keep_error_body(BodyMode::Json, b" \n"), None);
        assert_eq!(keep_error_body(BodyMode::None, body), None);
    }

    #[test]
    fn secrets_are_cut_out_of_bodies_in_plain_and_json_escaped_form() {
        let redactor = Redactor::new(&["s3cr3t/token\"x".to_string(), "abc".to_string()]);
        let plain = br#"auth: s3cr3t/token"x; abc"#;
        assert_eq!(&*redactor.redact(plain), br#"auth: [redacted]; abc"#);
        let json = br#"{"h":"s3cr3t/token\"x","i":"s3cr3t\/token\"x"}"#;
        assert_eq!(
            &*redactor.redact(json),
            br#"{"h":"[redacted]","i":"[redacted]"}"#
        );
        assert!(matches!(
            redactor.redact(b"nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn select_keeps_only_listed_pointers() {
        let body = br#"{"id":7,"email":"a@b","address":{"city":"Oslo"},"noise":[1,2]}"#;
        let kept = keep_body(
            BodyMode::Json,
            &["/id".into(), "/address/city".into(), "/absent".into()],
            body,
        )
        .unwrap();
        assert_eq!(
            kept,
            Some(serde_json::json!({"id": 7, "address/city": "Oslo"}))
        );
    }

    #[test]
    fn invalid_json_is_a_decode_failure_and_text_survives_bad_utf8() {
        let err = keep_body(BodyMode::Json, &[], b"{not json").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Decode);
        let text = keep_body(BodyMode::Text, &[], b"ok \xff\xfe").unwrap();
        assert_eq!(text, Some(Value::String("ok \u{fffd}\u{fffd}".into())));
        assert_eq!(keep_body(BodyMode::Json, &[], b"  ").unwrap(), None);
    }
}
