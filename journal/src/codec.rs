//! On-disk encoding: `[format: u8][crc32(key ‖ body): u32 BE][body]`, where body is the
//! record (or checkpoint) encoded with `rmp_serde::to_vec_named`.
//!
//! The checksum covers the key so that a value found under the wrong key is caught too.

use serde::{de::DeserializeOwned, Serialize};

use crate::{JournalError, Result};

/// The current value format.
pub const FORMAT_V1: u8 = 1;
const HEADER: usize = 5;

/// The sled key of a sequence number: big-endian, so sled iterates in order.
pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a sled key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(body);
    h.finalize()
}

/// Encodes a value for storage under `key`.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>> {
    let body = rmp_serde::to_vec_named(value).map_err(|e| JournalError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&checksum(key, &body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks format and checksum without decoding; returns the body.
pub fn check<'a>(key: &[u8], raw: &'a [u8]) -> std::result::Result<&'a [u8], String> {
    if raw.len() < HEADER {
        return Err(format!(
            "value is {} bytes, shorter than its header",
            raw.len()
        ));
    }
    if raw[0] != FORMAT_V1 {
        return Err(format!("unknown value format {}", raw[0]));
    }
    let stored = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
    let body = &raw[HEADER..];
    let actual = checksum(key, body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    Ok(body)
}

/// Checks and decodes a stored value.
pub fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> std::result::Result<T, String> {
    let body = check(key, raw)?;
    rmp_serde::from_slice(body).map_err(|e| format!("undecodable body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_detects_flips_and_wrong_key() {
        let v = ("hello".to_string(), 42u64);
        let raw = encode(&key(7), &v).unwrap();
        let back: (String, u64) = decode(&key(7), &raw).unwrap();
        assert_eq!(back, v);
        assert!(decode::<(String, u64)>(&key(8), &raw).is_err());
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert!(check(&key(7), &bad).is_err(), "flip at byte {i} bit {bit}");
            }
        }
        assert!(check(&key(7), &raw[..raw.len() - 1]).is_err());
        assert!(check(&key(7), &raw[..3]).is_err());
    }
}
