use crate::{ErrorKind, RecordError};
use std::error::Error as _;

/// Classifies a transport error, keeping the whole cause chain in the message (reqwest's own
/// text is often just "error sending request").
pub(crate) fn classify(error: &reqwest::Error) -> RecordError {
    let chain = cause_chain(error);
    let lower = chain.to_ascii_lowercase();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_redirect() {
        ErrorKind::Redirect
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorKind::Tls
    } else if error.is_connect()
        || lower.contains("connection reset")
        || lower.contains("connection closed")
        || lower.contains("broken pipe")
    {
        ErrorKind::Connect
    } else if error.is_decode() {
        ErrorKind::Decode
    } else {
        ErrorKind::Request
    };
    RecordError {
        kind,
        message: chain,
    }
}

/// Whether the attempt failed because this process ran out of file descriptors (EMFILE,
/// ENFILE): a local shortage, not the host's fault and not the record's.
pub(crate) fn out_of_descriptors(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(23 | 24))
        {
            return true;
        }
        source = cause.source();
    }
    cause_chain(error)
        .to_ascii_lowercase()
        .contains("too many open files")
}

fn cause_chain(error: &reqwest::Error) -> String {
    // Drop the URL: it can hold record values, and the record id is beside the error anyway.
    let mut text = error.without_url_ref().to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), ""),
            None => text,
        }
    }
}
