//! `volley-worker healthcheck`: asks a running worker's `/readyz` (or `/livez`) over HTTP,
//! for container images that have no curl.

use std::time::Duration;

/// How long the probe waits for an answer: an orchestrator's probe has its own timeout,
/// and a worker that takes longer than this to answer is not healthy either.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Which endpoint to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/readyz`: connected, consuming, not draining.
    Ready,
    /// `/livez`: the runtime makes progress.
    Live,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Ready => "/readyz",
            Probe::Live => "/livez",
        }
    }
}

/// The URL of `probe` on the worker at `address`: a `--http-addr` (`0.0.0.0:9000`, asked
/// on the loopback) or a base URL (`http://worker:9000`).
pub fn probe_url(address: &str, probe: Probe) -> String {
    let base = if address.contains("://") {
        address.trim_end_matches('/').to_string()
    } else {
        // A worker listening on every interface is reached on this host's loopback.
        let local = match address.rsplit_once(':') {
            Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => address.to_string(),
        };
        format!("http://{local}")
    };
    format!("{base}{}", probe.path())
}

/// Asks `url`; `Ok` with the body on a 200.
///
/// # Errors
/// The one-line reason: the worker's own answer (`draining`, `RabbitMQ at …: not
/// connected (…)`), or why it could not be asked.
pub async fn check(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", describe(&e)))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{url} answered {status} but its body could not be read: {e}"))?;
    let line = body.lines().next().unwrap_or_default().trim().to_string();
    if status.is_success() {
        Ok(line)
    } else if line.is_empty() {
        Err(format!("{url} answered {status}"))
    } else {
        Err(line)
    }
}

/// The innermost cause of a failed request (reqwest's own text is "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() {
        format!("no answer within {} s", ANSWER_WITHIN.as_secs())
    } else {
        source.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_addr_is_asked_on_the_loopback() {
        assert_eq!(
            probe_url("0.0.0.0:9000", Probe::Ready),
            "http://127.0.0.1:9000/readyz"
        );
        assert_eq!(
            probe_url("[::]:9000", Probe::Live),
            "http://[::1]:9000/livez"
        );
        assert_eq!(
            probe_url("http://worker:9000/", Probe::Ready),
            "http://worker:9000/readyz"
        );
        assert_eq!(
            probe_url("10.1.2.3:80", Probe::Live),
            "http://10.1.2.3:80/livez"
        );
    }
}
