use super::{InputError, InputRecord, ReaderOptions};
use std::io::BufRead;

/// Reads a CSV file with a header row; each row becomes a JSON object of strings.
pub(crate) struct CsvReader<R: BufRead> {
    reader: csv::Reader<R>,
    options: ReaderOptions,
    /// Header names, already JSON-encoded with their colon: `"name":`.
    keys: Vec<String>,
    id_column: Option<usize>,
    started: bool,
    record: csv::ByteRecord,
}

impl<R: BufRead> CsvReader<R> {
    pub(crate) fn new(reader: R, options: ReaderOptions) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(reader);
        Self {
            reader,
            options,
            keys: Vec::new(),
            id_column: None,
            started: false,
            record: csv::ByteRecord::new(),
        }
    }

    fn error(&self, line: u64, reason: impl Into<String>) -> InputError {
        InputError::record(&self.options.source_name, line, None, reason)
    }

    fn read_header(&mut self) -> Result<(), InputError> {
        let headers = match self.reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(self.csv_error(e)),
        };
        let mut seen = std::collections::HashSet::new();
        for (i, field) in headers.iter().enumerate() {
            let name = std::str::from_utf8(field)
                .map_err(|_| self.error(1, "invalid UTF-8 in the header row"))?;
            let name = if i == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                name
            };
            if !seen.insert(name.to_string()) {
                return Err(self.error(1, format!("duplicate column name '{name}'")));
            }
            if name.starts_with("$serde_json::private::") {
                return Err(self.error(
                    1,
                    format!("column name '{name}' is reserved by the JSON parser"),
                ));
            }
            if name == self.options.id_field {
                self.id_column = Some(i);
            }
            let mut key = serde_json::to_string(name).unwrap_or_default();
            key.push(':');
            self.keys.push(key);
        }
        Ok(())
    }

    fn csv_error(&self, e: csv::Error) -> InputError {
        match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => self.error(
                pos.as_ref().map_or(0, csv::Position::line),
                format!("expected {expected_len} fields, found {len}"),
            ),
            csv::ErrorKind::Io(_) => InputError::Io {
                source_name: self.options.source_name.clone(),
                error: std::io::Error::other(e.to_string()),
            },
            _ => self.error(e.position().map_or(0, csv::Position::line), e.to_string()),
        }
    }

    pub(crate) fn next_record(&mut self) -> Option<Result<InputRecord, InputError>> {
        if !self.started {
            self.started = true;
            if let Err(e) = self.read_header() {
                return Some(Err(e));
            }
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => Some(self.convert()),
            Err(e) => Some(Err(self.csv_error(e))),
        }
    }

    fn convert(&self) -> Result<InputRecord, InputError> {
        let line = self.record.position().map_or(0, csv::Position::line);
        if self.record.as_slice().len() > self.options.max_record_bytes {
            return Err(self.error(
                line,
                format!(
                    "record is larger than input.max_record_bytes ({} bytes)",
                    self.options.max_record_bytes
                ),
            ));
        }
        let mut data = String::with_capacity(self.record.as_slice().len() + self.keys.len() * 16);
        data.push('{');
        let mut id = None;
        for (i, (field, key)) in self.record.iter().zip(&self.keys).enumerate() {
            let value = std::str::from_utf8(field)
                .map_err(|_| self.error(line, format!("invalid UTF-8 in field {}", i + 1)))?;
            if i > 0 {
                data.push(',');
            }
            data.push_str(key);
            data.push_str(&serde_json::to_string(value).unwrap_or_default());
            if Some(i) == self.id_column {
                id = Some(value.to_string());
            }
        }
        data.push('}');
        let id = match id {
            Some(id) if id.is_empty() => {
                return Err(self.error(
                    line,
                    format!("id field '{}' is empty", self.options.id_field),
                ));
            }
            Some(id) => id,
            None => line.to_string(),
        };
        Ok(InputRecord { id, line, data })
    }
}
