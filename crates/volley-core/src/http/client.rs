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
        .redirect(reqwest::redirect::Policy::limited(options.max_redirects))
        .build()
}
