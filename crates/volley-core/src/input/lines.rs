use std::io::{self, BufRead};

/// What one bounded line read produced.
pub(crate) enum Line {
    /// A line (without its terminator), within the limit.
    Text,
    /// The line was longer than the limit; it was skipped without being buffered.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads lines into a reused buffer, never holding more than `limit` bytes of one line: a
/// 1 GB line costs 1 GB of reading, not of memory.
pub(crate) struct BoundedLines<R: BufRead> {
    reader: R,
    limit: usize,
    pub(crate) buf: Vec<u8>,
    pub(crate) bytes_read: u64,
}

impl<R: BufRead> BoundedLines<R> {
    pub(crate) fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            buf: Vec::with_capacity(4096),
            bytes_read: 0,
        }
    }

    pub(crate) fn next_line(&mut self) -> io::Result<Line> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (take, found) = match memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let content = if found {
                &available[..take - 1]
            } else {
                &available[..take]
            };
            if !too_long {
                if self.buf.len() + content.len() > self.limit {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(content);
                }
            }
            self.reader.consume(take);
            self.bytes_read += take as u64;
            if found {
                break;
            }
        }
        if !any {
            return Ok(Line::Eof);
        }
        if too_long {
            return Ok(Line::TooLong);
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Line::Text)
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}
