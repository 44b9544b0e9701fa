//! Reading the time claims of a JWT without verifying it.
//!
//! The vault is not the audience of the access token and has no key to check it; it only needs
//! `exp` and `iat` to schedule refreshes. An opaque (non-JWT) token is normal and yields no
//! claims. Anything malformed yields no claims too: the caller falls back to `expires_in` or the
//! profile's default lifetime. Never panics on any input (fuzzed).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Tokens longer than this are not inspected.
const MAX_JWT_LEN: usize = 64 * 1024;

/// The time claims of a JWT, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JwtTimes {
    /// `exp`, if present and numeric.
    pub exp: Option<i64>,
    /// `iat`, if present and numeric.
    pub iat: Option<i64>,
}

/// Decode the `exp` and `iat` claims of a compact JWS, without verifying the signature.
pub fn decode_times(token: &str) -> Option<JwtTimes> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() {
        return None;
    }
    // Some issuers pad; the spec says they must not. Accept both.
    let payload = payload.trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let obj = value.as_object()?;
    let num = |key: &str| -> Option<i64> {
        let v = obj.get(key)?;
        if let Some(i) = v.as_i64() {
            Some(i)
        } else {
            let f = v.as_f64()?;
            (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
        }
    };
    Some(JwtTimes {
        exp: num("exp"),
        iat: num("iat"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.as_bytes())
        )
    }

    #[test]
    fn reads_exp_and_iat() {
        let t = decode_times(&jwt(r#"{"exp":1740000000,"iat":1739990000}"#));
        assert_eq!(
            t,
            Some(JwtTimes {
                exp: Some(1_740_000_000),
                iat: Some(1_739_990_000)
            })
        );
    }

    #[test]
    fn seed_002_example_token_has_exp() {
        // The access token printed in seed 002's response example.
        let tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJodHRwOi8vc2NoZW1hcy54bWxzb2FwLm9yZy93cy8yMDA1LzA1L2lkZW50aXR5L2NsYWltcy9uYW1laWRlbnRpZmllciI6InRlc3R1c2VyIiwiVXNlcklEIjoiMTIzIiwiSW5zdGFuY2VJRCI6IjEiLCJSb2xlcyI6Ilt7XCJSSURcIjoxLFwiQklEXCI6MTAwLFwiUElEXCI6NX1dIiwiZXhwIjoxNzQwMDAwMDAwLCJpc3MiOiJodHRwczovLzdnLmNvbS5hdSIsImF1ZCI6IlB1YmxpYyJ9.signature";
        assert_eq!(decode_times(tok).and_then(|t| t.exp), Some(1_740_000_000));
    }

    #[test]
    fn opaque_and_malformed_tokens_yield_nothing() {
        for t in [
            "",
            "opaque-token",
            "a.b",
            "a.b.c.d",
            "..",
            "eyJ.!!!.x",
            &jwt("[1,2]"),
            &jwt("not json"),
        ] {
            assert!(decode_times(t).is_none_or(|c| c.exp.is_none()), "{t}");
        }
        let big = "a".repeat(MAX_JWT_LEN + 1);
        assert!(decode_times(&big).is_none());
    }

    #[test]
    fn float_and_string_claims() {
        let t = decode_times(&jwt(r#"{"exp":1740000000.9,"iat":"soon"}"#));
        assert_eq!(t.and_then(|t| t.exp), Some(1_740_000_000));
        assert_eq!(t.and_then(|t| t.iat), None);
    }
}
