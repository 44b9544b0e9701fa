//! Entry points for the fuzz targets in `fuzz/`: crate-internal decoders reached with
//! arbitrary bytes. Compiled only under `cfg(fuzzing)`.

use crate::crypto::{self, KdfParams, KeyKind, KeySource, RecordCipher, WrappedKey};

/// Decrypt arbitrary bytes as a session record of an arbitrary row, and parse what decrypts.
pub fn open_record(data: &[u8]) {
    let Ok(cipher) = RecordCipher::new(&[7u8; 32]) else {
        return;
    };
    if data.len() < 34 {
        return;
    }
    let (head, rest) = data.split_at(34);
    let generation = u64::from(head[0]);
    let format = i64::from(head[1] % 3);
    let (nonce, ct) = rest.split_at(rest.len().min(24));
    if let Ok(plain) = cipher.open(&head[2..34], format, generation, nonce, ct) {
        let _ = serde_json::from_slice::<crate::session::SessionRecord>(&plain);
    }
    // And a record that does decrypt, built from the input, must parse or fail cleanly.
    if let Ok((n, c)) = cipher.seal(&head[2..34], generation, rest) {
        if let Ok(plain) = cipher.open(&head[2..34], crypto::RECORD_FORMAT, generation, &n, &c) {
            let _ = serde_json::from_slice::<crate::session::SessionRecord>(&plain);
        }
    }
}

/// Unwrap an arbitrary stored key row.
pub fn unwrap_key(data: &[u8]) {
    if data.len() < 16 {
        return;
    }
    let kind = if data[0] & 1 == 0 {
        KeyKind::Raw
    } else {
        KeyKind::Argon2id
    };
    let kdf = (kind == KeyKind::Argon2id).then(|| KdfParams {
        m_kib: 8 + u32::from(data[1] % 64),
        t: u32::from(data[2] % 4),
        p: u32::from(data[3] % 3),
    });
    let w = WrappedKey {
        kind,
        salt: Some(data[4..16].to_vec()),
        kdf,
        nonce: data.get(16..40).unwrap_or_default().to_vec(),
        wrapped: data.get(40..).unwrap_or_default().to_vec(),
    };
    if let Ok(src) = KeySource::raw(&[1u8; 32]) {
        let _ = crypto::unwrap_data_key(&src, &w);
    }
    if let Ok(src) = KeySource::passphrase("fuzz") {
        let _ = crypto::unwrap_data_key(&src, &w);
    }
}

/// Decode a JWT's time claims from arbitrary text.
pub fn jwt_times(text: &str) {
    let _ = crate::jwt::decode_times(text);
}

/// Validate arbitrary text as an id_token against arbitrary bytes read as a key set (RSA and
/// P-256 keys), with a stored subject or none. The first input byte picks the split point.
pub fn id_token(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) * rest.len() / 255).min(rest.len());
    let (jwks, token) = rest.split_at(cut);
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    let settings = crate::oidc::OidcSettings {
        issuer: "https://op.example".into(),
        audience: "client".into(),
        jwks_url: None,
        algorithms: ["RS256", "PS256", "ES256"]
            .iter()
            .filter_map(|a| crate::oidc::algorithm_from_name(a))
            .collect(),
        leeway_secs: 60,
        allow_http: false,
    };
    let keys = crate::oidc::parse_jwks(jwks).unwrap_or(jsonwebtoken::jwk::JwkSet { keys: Vec::new() });
    let stored = crate::oidc::IdentityClaims {
        sub: "user".into(),
        ..Default::default()
    };
    let _ = crate::oidc::validate_id_token(token, &settings, &keys, 1_800_000_000_000, None);
    let _ = crate::oidc::validate_id_token(token, &settings, &keys, 1_800_000_000_000, Some(&stored));
}
