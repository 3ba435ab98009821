//! CSRF protection for the HTML forms: a random token in a `SameSite=Strict`, HttpOnly cookie,
//! repeated in a hidden form field and compared in constant time. Another site can make a browser
//! send the form, but can neither read the cookie nor make the browser attach it.

use axum::http::{HeaderMap, HeaderValue};
use canarykeys_core::ManageSecret;
use subtle::ConstantTimeEq;

use crate::http::ApiError;

pub const COOKIE: &str = "ck_csrf";

/// The CSRF token of this browser, and the `Set-Cookie` to send if it had none yet.
pub struct CsrfToken {
    pub value: String,
    pub set_cookie: Option<HeaderValue>,
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, COOKIE).filter(|v| v.len() == 43)
}

/// Reuses the browser's token, or makes one (256 random bits) with its cookie.
pub fn token_for(headers: &HeaderMap, secure: bool) -> CsrfToken {
    if let Some(value) = cookie_value(headers) {
        return CsrfToken {
            value,
            set_cookie: None,
        };
    }
    let value = ManageSecret::generate().expose().to_owned();
    let cookie = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    CsrfToken {
        value,
        set_cookie: HeaderValue::from_str(&cookie).ok(),
    }
}

/// Checks a submitted form's token against the cookie.
pub fn verify(headers: &HeaderMap, submitted: &str) -> Result<(), ApiError> {
    match cookie_value(headers) {
        Some(cookie) if bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes())) => Ok(()),
        _ => Err(ApiError::Csrf),
    }
}
