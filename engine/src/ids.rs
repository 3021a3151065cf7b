//! Validated identifiers. Raw strings become these once, at the edge; past that point
//! an identifier is known to be well formed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The namespace every installation has.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Longest namespace name (as containerd).
pub const MAX_NAME_LEN: usize = 76;
/// Largest key + value of one label, in bytes (as containerd).
pub const MAX_LABEL_BYTES: usize = 4096;

/// A namespace name: 1 to 76 characters, ASCII letters and digits in runs separated by
/// single `.`, `_` or `-` (containerd's rule), so it is safe in paths, URLs and as a
/// label value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NamespaceName(String);

impl NamespaceName {
    /// Parses and validates a name.
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        validate_name("namespace", raw)?;
        Ok(NamespaceName(raw.to_string()))
    }

    /// The default namespace.
    pub fn default_ns() -> Self {
        NamespaceName(DEFAULT_NAMESPACE.to_string())
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NamespaceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        NamespaceName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NamespaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Validates a name by containerd's identifier rule; `what` names the object in the
/// error.
pub fn validate_name(what: &str, raw: &str) -> Result<(), EngineError> {
    if raw.is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "{what} name must not be empty"
        )));
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(EngineError::InvalidArgument(format!(
            "{what} name {raw:?} is {} characters long; the limit is {MAX_NAME_LEN}",
            raw.len()
        )));
    }
    let bytes = raw.as_bytes();
    let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let ok_chars = bytes.iter().all(|&b| b.is_ascii_alphanumeric() || sep(b));
    let ok_shape = !sep(bytes[0])
        && !sep(bytes[bytes.len() - 1])
        && !bytes.windows(2).any(|w| sep(w[0]) && sep(w[1]));
    if !ok_chars || !ok_shape {
        return Err(EngineError::InvalidArgument(format!(
            "{what} name {raw:?} is invalid: use letters and digits, separated by single '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// Labels: string keys and values; keys non-empty, each key + value at most
/// [`MAX_LABEL_BYTES`].
pub type Labels = BTreeMap<String, String>;

/// Validates labels.
pub fn validate_labels(labels: &Labels) -> Result<(), EngineError> {
    for (k, v) in labels {
        if k.is_empty() {
            return Err(EngineError::InvalidArgument(
                "label keys must not be empty".into(),
            ));
        }
        if k.len() + v.len() > MAX_LABEL_BYTES {
            return Err(EngineError::InvalidArgument(format!(
                "label {k:?} is {} bytes with its value; the limit is {MAX_LABEL_BYTES}",
                k.len() + v.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "a", "k8s.io", "team_a-1", "A1.b2_c3-d4"] {
            assert!(NamespaceName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(77);
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a._b",
            "with space",
            "slash/x",
            "../x",
            "é",
            &long,
        ] {
            let e = NamespaceName::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
        assert!(NamespaceName::parse(&"a".repeat(76)).is_ok());
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<NamespaceName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<NamespaceName>("\"not ok\"").is_err());
    }

    #[test]
    fn labels() {
        let mut l = Labels::new();
        l.insert("a".into(), "b".into());
        assert!(validate_labels(&l).is_ok());
        l.insert(String::new(), "x".into());
        assert!(validate_labels(&l).is_err());
        let mut big = Labels::new();
        big.insert("k".into(), "v".repeat(MAX_LABEL_BYTES));
        assert!(validate_labels(&big).is_err());
    }
}
