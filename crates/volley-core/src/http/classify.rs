//! How one attempt is judged, in one place: [`transport_error`] turns a reqwest failure into
//! a classified [`RecordError`], and [`AttemptClass::of`] reads an attempt's status and
//! error once for everything that learns from it: the host's circuit breaker
//! ([`AttemptClass::counts_against_host`]), adaptive concurrency
//! ([`AttemptClass::congested`]), the fleet-wide pause on `Retry-After`
//! ([`AttemptClass::asks_to_back_off`]) and the retry policy (`RetryPolicy::retries`).
//!
//! | attempt                                   | class        | breaker | adaptive cut |
//! |-------------------------------------------|--------------|---------|--------------|
//! | 2xx                                       | `Success`    | –       | –            |
//! | 4xx but 429; redirect; TLS; body too large or not as asked; template | `Rejected` | – | – |
//! | 429                                       | `Throttled`  | –       | cut          |
//! | 5xx but 503; connect, DNS, other request failure | `Failing` | counts | –        |
//! | 503; timeout                              | `Overloaded` | counts  | cut          |
//!
//! A failure reading the body keeps its status: a 503 whose body was cut off is still a 503.

use crate::{ErrorKind, RecordError};
use std::error::Error as _;

/// What an attempt says about the host it called. The retry policy reads the failure's kind
/// and status from it; the breaker and adaptive concurrency read its [`HostSignal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    /// The API answered with a success.
    Success,
    /// The attempt failed.
    Failed {
        /// How it failed.
        kind: ErrorKind,
        /// The status, if a response came.
        status: Option<u16>,
        /// What the failure says about the host.
        signal: HostSignal,
    },
}

/// What a failed attempt says about the host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSignal {
    /// Nothing: the record's own failure (a 4xx but 429, a redirect, TLS, a body over the cap
    /// or not as asked, a template).
    Rejected,
    /// The host asks for less traffic (a 429) without failing.
    Throttled,
    /// The host failed the call: a 5xx but 503, a connection refused or reset, DNS, another
    /// transport failure.
    Failing,
    /// The host is overloaded: a 503 or a timeout, which is both a failure and congestion.
    Overloaded,
}

impl AttemptClass {
    /// Classifies an attempt from its status (if a response came) and its failure (if any).
    pub fn of(status: Option<u16>, error: Option<&RecordError>) -> Self {
        let Some(kind) = error.map(|e| e.kind) else {
            return AttemptClass::Success;
        };
        let failing = matches!(
            kind,
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Dns | ErrorKind::Request
        ) || status.is_some_and(|s| s >= 500);
        let congested = matches!(status, Some(429 | 503)) || kind == ErrorKind::Timeout;
        let signal = match (failing, congested) {
            (false, false) => HostSignal::Rejected,
            (false, true) => HostSignal::Throttled,
            (true, false) => HostSignal::Failing,
            (true, true) => HostSignal::Overloaded,
        };
        AttemptClass::Failed {
            kind,
            status,
            signal,
        }
    }

    /// Whether the record got its answer.
    pub fn succeeded(self) -> bool {
        self == AttemptClass::Success
    }

    /// Whether the attempt counts as a failure of the host (the breaker's failure rate).
    pub fn counts_against_host(self) -> bool {
        matches!(
            self,
            AttemptClass::Failed {
                signal: HostSignal::Failing | HostSignal::Overloaded,
                ..
            }
        )
    }

    /// Whether the attempt is a sign of congestion (adaptive concurrency cuts its limit).
    pub fn congested(self) -> bool {
        matches!(
            self,
            AttemptClass::Failed {
                signal: HostSignal::Throttled | HostSignal::Overloaded,
                ..
            }
        )
    }

    /// Whether the host asked to be left alone (429, 503): a `Retry-After` it sent pauses
    /// the host fleet-wide instead of being one record's backoff.
    pub fn asks_to_back_off(self) -> bool {
        matches!(
            self,
            AttemptClass::Failed {
                status: Some(429 | 503),
                ..
            }
        )
    }
}

/// Classifies a transport error, keeping the whole cause chain in the message (reqwest's own
/// text is often just "error sending request").
pub(crate) fn transport_error(error: &reqwest::Error) -> RecordError {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: Option<u16>, kind: Option<ErrorKind>) -> AttemptClass {
        let error = kind.map(|kind| RecordError {
            kind,
            message: String::new(),
        });
        AttemptClass::of(status, error.as_ref())
    }

    fn signal(status: Option<u16>, kind: ErrorKind) -> HostSignal {
        match class(status, Some(kind)) {
            AttemptClass::Failed { signal, .. } => signal,
            AttemptClass::Success => panic!("a failure classified as success"),
        }
    }

    #[test]
    fn the_table_of_the_module_doc() {
        use ErrorKind::*;
        use HostSignal::*;
        assert_eq!(class(Some(200), None), AttemptClass::Success);
        let table = [
            (Some(404), Status, Rejected),
            (Some(400), Status, Rejected),
            (Some(301), Redirect, Rejected),
            (None, Tls, Rejected),
            (Some(200), BodyTooLarge, Rejected),
            (Some(200), Decode, Rejected),
            (None, Template, Rejected),
            (Some(429), Status, Throttled),
            (Some(500), Status, Failing),
            (Some(502), Status, Failing),
            (None, Connect, Failing),
            (None, Dns, Failing),
            (None, Request, Failing),
            (Some(503), Status, Overloaded),
            (None, Timeout, Overloaded),
            // A body read that failed keeps its status.
            (Some(503), Decode, Overloaded),
            (Some(429), Connect, Overloaded),
            (Some(200), Timeout, Overloaded),
        ];
        for (status, kind, expected) in table {
            assert_eq!(signal(status, kind), expected, "{status:?} {kind:?}");
        }
    }

    #[test]
    fn each_reader_sees_its_part() {
        let ok = class(Some(200), None);
        assert!(ok.succeeded() && !ok.counts_against_host() && !ok.congested());
        let throttled = class(Some(429), Some(ErrorKind::Status));
        assert!(!throttled.counts_against_host() && throttled.congested());
        assert!(throttled.asks_to_back_off());
        let down = class(Some(500), Some(ErrorKind::Status));
        assert!(down.counts_against_host() && !down.congested() && !down.asks_to_back_off());
        let overloaded = class(Some(503), Some(ErrorKind::Status));
        assert!(overloaded.counts_against_host() && overloaded.congested());
        assert!(overloaded.asks_to_back_off());
        let timeout = class(None, Some(ErrorKind::Timeout));
        assert!(timeout.counts_against_host() && timeout.congested());
        assert!(!timeout.asks_to_back_off(), "no status, no Retry-After");
        assert!(!class(Some(404), Some(ErrorKind::Status)).succeeded());
    }
}
