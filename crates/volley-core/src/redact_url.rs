//! Connection URLs shown to people (logs, errors, status) without their password: the
//! broker's and the store's alike.

/// The URL with its password replaced by `***`; a URL without one is shown as parsed.
/// Text that does not parse as a URL is not shown at all (it may hold a password in a
/// form the parser did not recognise).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, and this one has one.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_replaced() {
        assert_eq!(
            redact_url("amqp://guest:s3cr3t@rabbit:5672/%2f"),
            "amqp://guest:***@rabbit:5672/%2f"
        );
        assert_eq!(
            redact_url("rediss://:s3cr3t@cache:6380/2"),
            "rediss://:***@cache:6380/2"
        );
    }

    #[test]
    fn a_url_without_a_password_is_unchanged() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("amqp://guest@rabbit:5672/%2f"),
            "amqp://guest@rabbit:5672/%2f"
        );
    }

    #[test]
    fn an_unparsable_url_is_not_shown() {
        let shown = redact_url("amqp://guest:s3cr3t@[not a host");
        assert_eq!(shown, "<unparsable url>");
        assert!(!shown.contains("s3cr3t"));
    }
}
