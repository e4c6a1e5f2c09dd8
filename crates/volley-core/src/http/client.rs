use std::time::Duration;

/// Settings of the one HTTP client a worker shares across all its jobs and records.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// Redirects followed before the record fails with `redirect`.
    pub max_redirects: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            max_idle_per_host: 1024,
            max_redirects: 5,
        }
    }
}

/// Builds the shared client: keep-alive, rustls, no automatic decompression (so the body cap
/// applies to the bytes received), bounded redirects, proxies from the standard environment.
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub fn build_client(options: &ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("volley/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .pool_max_idle_per_host(options.max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(50))
        .tcp_nodelay(true)
        .redirect(same_origin_redirects(options.max_redirects))
        .build()
}

/// Follows redirects within the request's origin only: reqwest would forward custom headers
/// (an `X-Api-Key`) to another host, and a redirect is a way for an API to point a worker at
/// an internal address. A cross-origin redirect is returned as the response (the record fails
/// with `redirect`).
fn same_origin_redirects(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > max {
            attempt.error(format!("more than {max} redirects"))
        } else {
            attempt.follow()
        }
    })
}
