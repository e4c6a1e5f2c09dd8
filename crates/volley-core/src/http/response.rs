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
/// refused before reading, and a streamed body is cut as soon as it passes the cap.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<BodyRead, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(BodyRead::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(BodyRead::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(BodyRead::Complete(body))
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

#[cfg(test)]
mod tests {
    use super::*;

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
