//! Who may act. Without a token the dashboard is read-only. With one, an action needs it as
//! `Authorization: Bearer TOKEN`, or the session cookie the login form sets (HttpOnly,
//! `SameSite=Strict`, signed with the token, so every replica sharing the token accepts it
//! and a restart keeps it valid). Actions are POSTs with a JSON body from this origin:
//! a cross-site page can neither send the cookie nor a JSON body without a preflight this
//! server never grants.

use super::api::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub(super) const COOKIE: &str = "volley_session";
/// How long a login lasts.
const SESSION_MS: u64 = 12 * 3600 * 1000;

/// The configured token, if any.
#[derive(Clone)]
pub(crate) struct Access {
    token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How a request proved it may act, for the action log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// `Authorization: Bearer`.
    Bearer,
    /// The login cookie.
    Session,
}

impl Who {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer token",
            Self::Session => "session",
        }
    }
}

type Signer = Hmac<Sha256>;

impl Access {
    pub(crate) fn new(token: Option<String>) -> Self {
        Self {
            token: token
                .filter(|t| !t.trim().is_empty())
                .map(|t| t.trim().to_string()),
        }
    }

    /// Whether actions are possible at all.
    pub(crate) fn read_only(&self) -> bool {
        self.token.is_none()
    }

    fn signer(&self) -> Option<Signer> {
        let token = self.token.as_ref()?;
        Signer::new_from_slice(token.as_bytes()).ok()
    }

    /// Whether `given` is the token, compared in constant time (as MACs of both).
    pub(crate) fn is_token(&self, given: &str) -> bool {
        let (Some(token), Some(mut given_mac), Some(mut token_mac)) =
            (self.token.as_deref(), self.signer(), self.signer())
        else {
            return false;
        };
        given_mac.update(given.trim().as_bytes());
        token_mac.update(token.as_bytes());
        given_mac
            .verify_slice(&token_mac.finalize().into_bytes())
            .is_ok()
    }

    /// A session cookie's value, valid until `now_ms` + 12 h.
    pub(crate) fn session(&self, now_ms: u64) -> Option<String> {
        let until = now_ms + SESSION_MS;
        let mut mac = self.signer()?;
        mac.update(format!("session:{until}").as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(format!("{until}.{sig}"))
    }

    fn valid_session(&self, value: &str, now_ms: u64) -> bool {
        let Some((until, sig)) = value.split_once('.') else {
            return false;
        };
        let (Ok(until_ms), Some(mut mac)) = (until.parse::<u64>(), self.signer()) else {
            return false;
        };
        let Some(sig) = hex(sig) else { return false };
        mac.update(format!("session:{until}").as_bytes());
        until_ms > now_ms && mac.verify_slice(&sig).is_ok()
    }

    /// Who the request is, if it may act; `None` when it carries neither the token nor a
    /// live session.
    pub(crate) fn who(&self, headers: &HeaderMap, now_ms: u64) -> Option<Who> {
        if self.read_only() {
            return None;
        }
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            return auth
                .strip_prefix("Bearer ")
                .filter(|t| self.is_token(t))
                .map(|_| Who::Bearer);
        }
        cookie(headers, COOKIE)
            .filter(|v| self.valid_session(v, now_ms))
            .map(|_| Who::Session)
    }

    /// Checks that a request may act: a token is configured, the request proves it, and a
    /// cookie-borne one comes from this origin with a JSON body.
    ///
    /// # Errors
    /// 403 read-only, 401 without proof, 403 from another origin, 415 without JSON.
    pub(crate) fn authorize(&self, headers: &HeaderMap, now_ms: u64) -> Result<Who, ApiError> {
        if self.read_only() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read-only: this dashboard has no token (start volley serve with VOLLEY_DASHBOARD_TOKEN or --token-file to allow actions)",
            ));
        }
        let who = self.who(headers, now_ms).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this action needs the dashboard's token: sign in, or send Authorization: Bearer TOKEN",
            )
        })?;
        if who == Who::Session {
            same_origin(headers)?;
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "actions take a JSON body (Content-Type: application/json)",
                ));
            }
        }
        Ok(who)
    }
}

/// Refuses a request whose `Origin` (or, without one, `Referer`) is another site's.
///
/// # Errors
/// 403 naming the origin.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else { return Ok(()) };
    let origin_host = from
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    if origin_host == host {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ))
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                k.clone(),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn a_session_is_good_until_it_expires_and_only_with_the_same_token() {
        let access = Access::new(Some("s3cret".into()));
        let value = access.session(1_000).unwrap_or_default();
        let cookie = format!("{COOKIE}={value}");
        let h = headers(&[(header::COOKIE, &cookie)]);
        assert_eq!(access.who(&h, 2_000), Some(Who::Session));
        assert_eq!(access.who(&h, 1_000 + SESSION_MS + 1), None, "expired");
        assert_eq!(Access::new(Some("other".into())).who(&h, 2_000), None);
        let forged = format!("{COOKIE}={}.{}", 1_000 + SESSION_MS * 100, "00".repeat(32));
        assert_eq!(
            access.who(&headers(&[(header::COOKIE, &forged)]), 2_000),
            None
        );
    }

    #[test]
    fn the_bearer_token_must_match_and_read_only_refuses_everything() {
        let access = Access::new(Some("s3cret".into()));
        assert_eq!(
            access.who(&headers(&[(header::AUTHORIZATION, "Bearer s3cret")]), 0),
            Some(Who::Bearer)
        );
        assert_eq!(
            access.who(&headers(&[(header::AUTHORIZATION, "Bearer s3cre")]), 0),
            None
        );
        let none = Access::new(None);
        assert!(none.read_only());
        let e = none
            .authorize(&headers(&[(header::AUTHORIZATION, "Bearer x")]), 0)
            .err();
        assert!(e.is_some_and(|e| e.status() == StatusCode::FORBIDDEN));
    }

    #[test]
    fn a_cookie_from_another_site_or_without_json_is_refused() {
        let access = Access::new(Some("t".into()));
        let cookie = format!("{COOKIE}={}", access.session(0).unwrap_or_default());
        let cross = headers(&[
            (header::COOKIE, &cookie),
            (header::HOST, "127.0.0.1:8686"),
            (header::ORIGIN, "https://evil.example"),
            (header::CONTENT_TYPE, "application/json"),
        ]);
        assert_eq!(
            access.authorize(&cross, 1).err().map(|e| e.status()),
            Some(StatusCode::FORBIDDEN)
        );
        let form = headers(&[
            (header::COOKIE, &cookie),
            (header::HOST, "127.0.0.1:8686"),
            (header::ORIGIN, "http://127.0.0.1:8686"),
            (header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        ]);
        assert_eq!(
            access.authorize(&form, 1).err().map(|e| e.status()),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let good = headers(&[
            (header::COOKIE, &cookie),
            (header::HOST, "127.0.0.1:8686"),
            (header::ORIGIN, "http://127.0.0.1:8686"),
            (header::CONTENT_TYPE, "application/json"),
        ]);
        assert_eq!(access.authorize(&good, 1).ok(), Some(Who::Session));
    }
}
