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
