//! Reading the time claims of a JWT without verifying it.
//!
//! The vault is not the audience of the access token and has no key to check it; it only needs
//! `exp` and `iat` to schedule refreshes. An opaque (non-JWT) token is normal and yields no
//! claims. Anything malformed yields no claims too: the caller falls back to `expires_in` or the
//! profile's default lifetime. Never panics on any input (fuzzed).
//!
//! The payload is decoded by `jsonwebtoken`'s unverified decoding
//! (`dangerous::insecure_decode_claims`) into a two-field struct: measured at about half the
//! time of the hand-written decoder it replaced, which built a whole `serde_json::Value`
//! (ADR 0012). The header is not read: an access token signed with an algorithm jsonwebtoken
//! does not know (or none) still gives its expiry.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

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

/// A claim read leniently: an integer, or a float floored; anything else (a string, an object)
/// is no value rather than a failure of the whole payload.
struct Seconds(Option<i64>);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(i64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds((v.is_finite() && v.abs() < 1e15).then(|| v.floor() as i64)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Seconds, E> {
                Ok(Seconds(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Seconds, E> {
                Ok(Seconds(None))
            }
            fn visit_unit<E>(self) -> Result<Seconds, E> {
                Ok(Seconds(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seconds, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Seconds(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seconds, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Seconds(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The two claims of a payload that must be a JSON object (serde's derive would also take an
/// array as the struct's fields in order).
struct TimeClaims {
    exp: Option<Seconds>,
    iat: Option<Seconds>,
}

impl<'de> Deserialize<'de> for TimeClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TimeClaims, A::Error> {
                let mut claims = TimeClaims { exp: None, iat: None };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "exp" => claims.exp = Some(map.next_value()?),
                        "iat" => claims.iat = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(claims)
            }
        }
        d.deserialize_map(V)
    }
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
    // Some issuers pad; the spec says they must not. Accept both (jsonwebtoken does not).
    let claims: TimeClaims = if payload.ends_with('=') {
        // Part of a credential: wiped when dropped.
        let unpadded = zeroize::Zeroizing::new(format!(".{}.", payload.trim_end_matches('=')));
        jsonwebtoken::dangerous::insecure_decode_claims(unpadded.as_bytes()).ok()?
    } else {
        jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?
    };
    Some(JwtTimes {
        exp: claims.exp.and_then(|s| s.0),
        iat: claims.iat.and_then(|s| s.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

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
    fn padded_payloads_and_unknown_header_algorithms_still_give_the_times() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1740000000,"iat":1}"#);
        let padded = format!("{payload}{}", "=".repeat((4 - payload.len() % 4) % 4));
        assert_ne!(payload, padded, "the fixture needs padding");
        let t = decode_times(&format!("e30.{padded}.s"));
        assert_eq!(t.and_then(|t| t.exp), Some(1_740_000_000));
        // `{}` and `{"alg":"none"}` are headers jsonwebtoken would refuse; only the payload counts.
        for header in ["e30", "eyJhbGciOiJub25lIn0"] {
            let t = decode_times(&format!("{header}.{payload}.")).unwrap();
            assert_eq!((t.exp, t.iat), (Some(1_740_000_000), Some(1)));
        }
        // Nested values in the claims are skipped, not fatal.
        let t = decode_times(&jwt(r#"{"exp":{"a":[1,{"b":2}]},"iat":[1,2],"x":null,"exp2":1}"#)).unwrap();
        assert_eq!((t.exp, t.iat), (None, None));
    }

    #[test]
    fn float_and_string_claims() {
        let t = decode_times(&jwt(r#"{"exp":1740000000.9,"iat":"soon"}"#));
        assert_eq!(t.and_then(|t| t.exp), Some(1_740_000_000));
        assert_eq!(t.and_then(|t| t.iat), None);
    }
}

/// What the decoder costs next to `jsonwebtoken`'s unverified decoding of the same claims
/// (ADR 0012 records the figures). A timing loop, not a test:
/// `cargo test -p tokenvault --release --lib jwt::cost -- --ignored --nocapture`.
#[cfg(test)]
mod cost {
    use std::time::Instant;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    #[derive(serde::Deserialize)]
    struct Times {
        exp: Option<i64>,
        iat: Option<i64>,
    }

    /// The hand-written decoder this module used before (a whole `serde_json::Value`).
    fn hand_written(token: &str) -> Option<(Option<i64>, Option<i64>)> {
        let mut parts = token.split('.');
        let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || payload.is_empty() {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let obj = value.as_object()?;
        let num = |key: &str| -> Option<i64> {
            let v = obj.get(key)?;
            v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
        };
        Some((num("exp"), num("iat")))
    }

    fn median_ns(mut f: impl FnMut() -> Option<(Option<i64>, Option<i64>)>) -> f64 {
        let mut runs = Vec::new();
        for _ in 0..21 {
            let n = 20_000;
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(f());
            }
            runs.push(t.elapsed().as_nanos() as f64 / f64::from(n));
        }
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    }

    #[test]
    #[ignore = "a timing loop; run it with --release --ignored --nocapture"]
    fn decode_cost() {
        // A ~900-byte access token like the seeds' (an RS256 header, a dozen claims).
        let claims = serde_json::json!({
            "iss": "https://auth.example.com/realms/game", "sub": "f1d2c3b4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
            "aud": ["account", "game-api"], "exp": 1_800_000_600, "iat": 1_800_000_000,
            "jti": "0c4c9a1e-5b7f-4e0b-9d3c-1a2b3c4d5e6f", "typ": "Bearer", "azp": "game-client",
            "session_state": "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d", "scope": "openid profile email offline_access",
            "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-game", "player"]},
            "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
            "email_verified": true, "preferred_username": "player-one", "name": "Player One",
            "given_name": "Player", "family_name": "One", "email": "player.one@example.com"
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k-2026-12"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        );
        let old = median_ns(|| hand_written(&token));
        let now = median_ns(|| super::decode_times(&token).map(|t| (t.exp, t.iat)));
        let typed = median_ns(|| {
            jsonwebtoken::dangerous::insecure_decode::<Times>(&token)
                .ok()
                .map(|d| (d.claims.exp, d.claims.iat))
        });
        assert_eq!(
            hand_written(&token),
            super::decode_times(&token).map(|t| (t.exp, t.iat))
        );
        println!(
            "jwt time claims, {} B token (median of 21 x 20,000): hand-written serde_json::Value decoder {old:.0} ns; \
             decode_times (jsonwebtoken insecure_decode_claims, lenient numbers) {now:.0} ns; \
             jsonwebtoken insecure_decode with header and i64 fields {typed:.0} ns",
            token.len()
        );
    }
}
