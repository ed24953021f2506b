//! The API token: with `SPARKY_API_TOKEN` set, build-changing calls carry it as
//! `Authorization: Bearer <token>`, compared in constant time.

use http::{HeaderMap, header};

use super::ApiError;
use crate::secrets::Secret;

/// The token of `Authorization: Bearer <token>`, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// With a token configured, the request must carry `Authorization: Bearer <token>`.
/// The comparison takes the same time wherever the first difference is.
pub fn check_token(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = bearer(headers).unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::bad_token())
    }
}

/// Compares two byte strings without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Only the length leaks, and a token's length is no secret worth keeping.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        let mut headers = HeaderMap::new();
        let token = Secret::new("t0k");
        assert!(check_token(None, &headers).is_ok());
        assert!(matches!(check_token(Some(&token), &headers), Err(ApiError::Unauthorized(_))));
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("Bearer t0k"));
        assert!(check_token(Some(&token), &headers).is_ok());
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("bearer t0k"));
        assert!(check_token(Some(&token), &headers).is_ok(), "the scheme is case-insensitive");
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("Basic t0k"));
        assert!(check_token(Some(&token), &headers).is_err());
    }
}
