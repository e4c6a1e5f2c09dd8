use super::id::{IdValue, ObjectProbe, kind_of};
use super::lines::{BoundedLines, Line};
use super::{InputError, InputRecord, ReaderOptions};
use serde::de::DeserializeSeed;
use std::io::BufRead;

/// Reads one JSON object per line.
pub(crate) struct JsonlReader<R: BufRead> {
    lines: BoundedLines<R>,
    options: ReaderOptions,
    line: u64,
}

impl<R: BufRead> JsonlReader<R> {
    pub(crate) fn new(reader: R, options: ReaderOptions) -> Self {
        Self {
            lines: BoundedLines::new(reader, options.max_record_bytes),
            options,
            line: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.lines.buf.capacity()
    }

    fn error(&self, column: Option<u64>, reason: impl Into<String>) -> InputError {
        InputError::record(&self.options.source_name, self.line, column, reason)
    }

    pub(crate) fn next_record(&mut self) -> Option<Result<InputRecord, InputError>> {
        loop {
            let read = match self.lines.next_line() {
                Ok(r) => r,
                Err(error) => {
                    return Some(Err(InputError::Io {
                        source_name: self.options.source_name.clone(),
                        error,
                    }));
                }
            };
            self.line += 1;
            match read {
                Line::Eof => return None,
                Line::TooLong => {
                    return Some(Err(self.error(
                        None,
                        format!(
                            "record is larger than input.max_record_bytes ({} bytes)",
                            self.options.max_record_bytes
                        ),
                    )));
                }
                Line::Text => {}
            }
            let mut bytes = &self.lines.buf[..];
            if self.line == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t.trim_matches(|c: char| c.is_ascii_whitespace()),
                Err(e) => {
                    return Some(Err(self.error(
                        None,
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                    )));
                }
            };
            if text.is_empty() {
                continue;
            }
            return Some(self.parse(text));
        }
    }

    fn parse(&self, text: &str) -> Result<InputRecord, InputError> {
        let first = text.as_bytes()[0];
        if first != b'{' {
            return Err(self.error(
                Some(1),
                format!("expected a JSON object, found {}", kind_of(first)),
            ));
        }
        // Skipped fields are not depth-checked by serde_json, but the worker decodes whole
        // records, so a record it could not decode is refused here, not in the chunk.
        if nesting_depth(text.as_bytes()) > MAX_DEPTH {
            return Err(self.error(None, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let probe = ObjectProbe {
            id_field: &self.options.id_field,
        };
        let id = probe
            .deserialize(&mut de)
            .and_then(|id| de.end().map(|()| id))
            .map_err(|e| {
                let message = e.to_string();
                let reason = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                self.error(Some(e.column() as u64), reason.to_string())
            })?;
        let id = match id {
            None => self.line.to_string(),
            Some(IdValue::Id(id)) if id.is_empty() => {
                return Err(self.error(
                    None,
                    format!("id field '{}' is empty", self.options.id_field),
                ));
            }
            Some(IdValue::Id(id)) => id,
            Some(IdValue::Bad(kind)) => {
                return Err(self.error(
                    None,
                    format!(
                        "id field '{}' must be a string or an integer, found {kind}",
                        self.options.id_field
                    ),
                ));
            }
        };
        Ok(InputRecord {
            id,
            line: self.line,
            data: text.to_string(),
        })
    }
}

/// serde_json's default recursion limit, which the worker's decoder applies.
const MAX_DEPTH: usize = 128;

/// The deepest nesting of arrays and objects, ignoring brackets inside strings.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
