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

/// A content digest: `sha256:` followed by 64 lower-case hex digits (the only algorithm
/// berth stores; others are refused at the edge with a clear error).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<hex>`.
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let Some(hex) = raw.strip_prefix("sha256:") else {
            return Err(EngineError::InvalidArgument(match raw.split_once(':') {
                Some((alg, _)) => {
                    format!("digest {raw:?} uses algorithm {alg:?}; only sha256 is supported")
                }
                None => format!("digest {raw:?} is not of the form sha256:<hex>"),
            }));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(EngineError::InvalidArgument(format!(
                "digest {raw:?} must be sha256: followed by 64 lower-case hex digits"
            )));
        }
        Ok(Digest(raw.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest::from_sha256(sha2::Sha256::digest(bytes).as_slice())
    }

    /// Wraps a finished SHA-256 (32 bytes).
    pub fn from_sha256(hash: &[u8]) -> Self {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in hash {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The algorithm (`sha256`).
    pub fn algorithm(&self) -> &str {
        "sha256"
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Digest::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn digests() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert_eq!(d.hex().len(), 64);
        for bad in [
            "",
            "sha256:",
            "sha512:abcd",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}

/// An image name: a reference as docker and containerd write them,
/// `[host[:port]/]path[:tag][@sha256:…]`, with lower-case path components. A name with
/// neither tag nor digest gets `:latest`. (No registry is defaulted: berth has no
/// implicit Docker Hub.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageName(String);

/// Longest image name accepted.
pub const MAX_IMAGE_NAME_LEN: usize = 512;

impl ImageName {
    /// Parses, validates and normalises (`:latest` when untagged).
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let bad =
            |why: &str| EngineError::InvalidArgument(format!("invalid image name {raw:?}: {why}"));
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.len() > MAX_IMAGE_NAME_LEN {
            return Err(bad("it is too long"));
        }
        let (rest, digest) = match raw.split_once('@') {
            Some((r, d)) => {
                Digest::parse(d).map_err(|e| bad(&e.to_string()))?;
                (r, Some(d))
            }
            None => (raw, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.as_bytes()[0] != b'.'
                && tag.as_bytes()[0] != b'-'
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad(
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        let mut components: Vec<&str> = path.split('/').collect();
        if components.len() > 1 {
            let first = components[0];
            if first.contains('.') || first.contains(':') || first == "localhost" {
                let (host, port) = match first.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (first, None),
                };
                let host_ok = !host.is_empty()
                    && host.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                let port_ok = port.is_none_or(|p| {
                    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
                });
                if !host_ok || !port_ok {
                    return Err(bad("the registry host is malformed"));
                }
                components.remove(0);
            }
        }
        if components.is_empty() {
            return Err(bad("the repository path is empty"));
        }
        for c in &components {
            let bytes = c.as_bytes();
            let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
            let ok = !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || sep(b))
                && !sep(bytes[0])
                && !sep(bytes[bytes.len() - 1])
                && !c.contains("..")
                && !c.contains("-.")
                && !c.contains(".-");
            if !ok {
                return Err(bad("path components are lower-case letters and digits separated by '.', '_', '__' or '-'"));
            }
        }
        let normalised = if tag.is_none() && digest.is_none() {
            format!("{rest}:latest")
        } else {
            raw.to_string()
        };
        Ok(ImageName(normalised))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ImageName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ImageName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a snapshot key or a lease id: 1 to 255 printable ASCII characters without
/// whitespace (keys are metadata, never paths: storage uses numeric ids).
pub fn validate_key(what: &str, raw: &str) -> Result<(), EngineError> {
    if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EngineError::InvalidArgument(format!(
            "{what} {raw:?} must be 1-255 printable characters without spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod image_name_tests {
    use super::*;

    #[test]
    fn image_names() {
        let n = |s: &str| ImageName::parse(s).map(|n| n.to_string());
        assert_eq!(n("busybox").unwrap(), "busybox:latest");
        assert_eq!(n("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            n("localhost:5000/team/app").unwrap(),
            "localhost:5000/team/app:latest"
        );
        assert_eq!(
            n("registry.example.com/a/b:v1").unwrap(),
            "registry.example.com/a/b:v1"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(n(&format!("app@{d}")).unwrap(), format!("app@{d}"));
        assert_eq!(n("my_app__x-1.y").unwrap(), "my_app__x-1.y:latest");
        for bad in [
            "",
            "UPPER",
            "a:",
            "a:.x",
            "a b",
            "/a",
            "a/",
            "a//b",
            "-a",
            "a@sha256:123",
            "a:b/c",
            "host:port/x",
            "../x",
            "a/../b",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }
}
