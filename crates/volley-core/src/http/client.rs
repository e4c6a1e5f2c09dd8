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
        // Shorter than most servers' keep-alive (so the client, not the server, closes an
        // idle connection, avoiding the reuse race) and short enough that a worker done with a
        // job soon gives back the descriptors of hundreds of pooled connections.
        .pool_idle_timeout(Duration::from_secs(15))
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

/// The proxy requests go through, from the standard environment variables as reqwest reads
/// them, with any password hidden: for a start-up log line.
pub fn proxy_from_env() -> Option<String> {
    let read = |name: &str| {
        std::env::var(name)
            .or_else(|_| std::env::var(name.to_ascii_lowercase()))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let mut parts = Vec::new();
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        if let Some(value) = read(name) {
            parts.push(format!("{name}={}", hide_password(&value)));
        }
    }
    if parts.is_empty() {
        return None;
    }
    if let Some(no_proxy) = read("NO_PROXY") {
        parts.push(format!("NO_PROXY={no_proxy}"));
    }
    Some(parts.join(" "))
}

fn hide_password(proxy: &str) -> String {
    // reqwest reads a proxy without a scheme as http://.
    let full = if proxy.contains("://") {
        proxy.to_string()
    } else {
        format!("http://{proxy}")
    };
    match url::Url::parse(&full) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Not a URL reqwest could use either; show no part of it that could be a secret.
        Err(_) => "<unparsable>".into(),
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::hide_password;

    #[test]
    fn proxy_passwords_are_hidden() {
        assert_eq!(
            hide_password("http://user:pa55@proxy.local:3128"),
            "http://user:***@proxy.local:3128/"
        );
        assert_eq!(
            hide_password("http://proxy.local:3128"),
            "http://proxy.local:3128/"
        );
        assert_eq!(
            hide_password("user:pa55@nowhere:8080"),
            "http://user:***@nowhere:8080/"
        );
        assert_eq!(hide_password("http://us er:pa55@[bad"), "<unparsable>");
    }
}
