//! Image references as the distribution spec and docker write them:
//! `host[:port]/path/of/repo[:tag][@sha256:…]`.

use std::fmt;
use std::str::FromStr;

use crate::ids::Digest;
use crate::{EngineError, Result};

/// Longest `host/repository` accepted (docker's `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed image reference: a registry (`host[:port]`), a repository path and a tag
/// and/or a digest. A reference with neither gets the tag `latest`; one with both is
/// fetched by its digest (the tag is kept for display).
///
/// Rules (the distribution spec's grammar): the first path component is the registry
/// when it contains `.` or `:`, is `localhost`, or has upper-case letters (docker's
/// rule); the registry is a DNS name or a bracketed IPv6 address with an optional port.
/// Repository components are lower-case `[a-z0-9]+` joined by `.`, `_`, `__` or runs of
/// `-`; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `sha256:` and 64
/// lower-case hex digits. berth has no implicit registry (no Docker Hub): a reference
/// without one is refused unless a default registry is configured
/// ([`Reference::parse_with_default`]).
///
/// `Display` writes `registry/repository[:tag][@digest]`, which parses back to the same
/// reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference that names its registry.
    pub fn parse(raw: &str) -> Result<Self> {
        Self::parse_with_default(raw, None)
    }

    /// Parses a reference; one without a registry gets `default_registry` when given
    /// (and is refused otherwise).
    pub fn parse_with_default(raw: &str, default_registry: Option<&str>) -> Result<Self> {
        let bad =
            |why: &str| EngineError::InvalidArgument(format!("invalid reference {raw:?}: {why}"));
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.len() > MAX_NAME_LEN + 1 + MAX_TAG_LEN + 72 {
            return Err(bad("it is too long"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let (rest, digest) = match raw.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
            None => (raw, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|why| bad(&why))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if looks_like_host(first) => (first.to_string(), path),
            _ => match default_registry {
                Some(d) => (d.to_string(), name),
                None => {
                    return Err(bad(&format!(
                        "it names no registry; write it as host[:port]/{name} \
                         (berth has no default registry unless one is configured)"
                    )))
                }
            },
        };
        validate_registry(&registry).map_err(|why| bad(&why))?;
        validate_repository(repository).map_err(|why| bad(&why))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad(&format!(
                "the name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The registry: `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What goes after `/manifests/` in a URL: the digest when there is one, else the
    /// tag.
    pub fn object(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TAG,
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository at `tag` (the digest is dropped).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag)
            .map_err(|why| EngineError::InvalidArgument(format!("invalid tag {tag:?}: {why}")))?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// Another repository of the same registry, with this reference's tag and digest.
    pub fn with_repository(&self, repository: &str) -> Result<Reference> {
        validate_repository(repository).map_err(|why| {
            EngineError::InvalidArgument(format!("invalid repository {repository:?}: {why}"))
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

/// Docker's rule for "this first component is a registry host".
fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Validates `host[:port]`: DNS labels (letters, digits, inner `-`) joined by `.`, or a
/// bracketed IPv6 address; the port is 1-65535.
pub(crate) fn validate_registry(registry: &str) -> std::result::Result<(), String> {
    let port = if let Some(inner) = registry.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err("the registry's IPv6 address has no closing ']'".into());
        };
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("the registry's IPv6 address is malformed".into());
        }
        match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err("the registry host is malformed".into()),
            },
        }
    } else {
        let (h, p) = match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        };
        let label_ok = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        };
        if h.is_empty() || !h.split('.').all(label_ok) {
            return Err(format!("the registry host {registry:?} is malformed"));
        }
        p
    };
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return Err(format!(
                "the registry port {p:?} is not a number from 1 to 65535"
            ));
        }
    }
    Ok(())
}

/// Validates a repository path by the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by `/`.
pub(crate) fn validate_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() {
        return Err("the repository path is empty".into());
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository names must be lower-case".into());
    }
    for c in repository.split('/') {
        if !component_ok(c) {
            return Err(format!(
                "repository path component {c:?} is invalid: use lower-case letters and \
                 digits separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-"+; it is followed by an alnum (the last
        // byte is one).
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).copied().is_some_and(is_alnum) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ok = !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the tag must be 1-{MAX_TAG_LEN} of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_round_trips() {
        let cases = [
            (
                "127.0.0.1:5000/app",
                "127.0.0.1:5000",
                "app",
                Some("latest"),
                None,
            ),
            (
                "localhost/team/app:v1",
                "localhost",
                "team/app",
                Some("v1"),
                None,
            ),
            (
                "registry.example.com/a/b/c:1.0-rc_1",
                "registry.example.com",
                "a/b/c",
                Some("1.0-rc_1"),
                None,
            ),
            (
                "Example.COM:443/x",
                "Example.COM:443",
                "x",
                Some("latest"),
                None,
            ),
            ("[::1]:5000/app:t", "[::1]:5000", "app", Some("t"), None),
            (
                "r.io/a__b/c--d/e.f:T",
                "r.io",
                "a__b/c--d/e.f",
                Some("T"),
                None,
            ),
        ];
        for (raw, reg, repo, tag, digest) in cases {
            let r = Reference::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(r.registry(), reg, "{raw}");
            assert_eq!(r.repository(), repo, "{raw}");
            assert_eq!(r.tag(), tag, "{raw}");
            assert_eq!(r.digest().map(Digest::as_str), digest, "{raw}");
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{raw}");
        }
        let by_digest = Reference::parse(&format!("r.io:5000/app@{D}")).unwrap();
        assert_eq!(by_digest.tag(), None);
        assert_eq!(by_digest.object(), D);
        assert_eq!(by_digest.to_string(), format!("r.io:5000/app@{D}"));
        let both = Reference::parse(&format!("r.io/app:v2@{D}")).unwrap();
        assert_eq!(both.tag(), Some("v2"));
        assert_eq!(both.object(), D, "the digest wins");
        assert_eq!(Reference::parse(&both.to_string()).unwrap(), both);
        assert_eq!(both.name(), "r.io/app");
    }

    #[test]
    fn refuses_malformed() {
        let long = format!("r.io/{}", "a".repeat(260));
        let long_tag = format!("r.io/a:{}", "t".repeat(129));
        for bad in [
            "",
            "r.io/",
            "r.io/App",
            "r.io/a//b",
            "r.io/a/",
            "r.io/-a",
            "r.io/a-",
            "r.io/a..b",
            "r.io/a___b",
            "r.io/a._b",
            "r.io/a:",
            "r.io/a:.t",
            "r.io/a:-t",
            "r.io/a:t@sha256:abc",
            "r.io/a@md5:abcd",
            "r.io:0/a",
            "r.io:99999/a",
            "r.io:x/a",
            "-r.io/a",
            "r..io/a",
            "[::1/a",
            "r.io/a b",
            "r.io/a\n",
            &long,
            &long_tag,
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
            assert!(e.to_string().starts_with("invalid reference"), "{e}");
        }
        let e = Reference::parse("busybox:1.36").unwrap_err();
        assert!(e.to_string().contains("names no registry"), "{e}");
        let e = Reference::parse("team/app").unwrap_err();
        assert!(e.to_string().contains("names no registry"), "{e}");
    }

    #[test]
    fn default_registry() {
        let r = Reference::parse_with_default("team/app:v1", Some("reg.local:5000")).unwrap();
        assert_eq!(r.to_string(), "reg.local:5000/team/app:v1");
        let r = Reference::parse_with_default("busybox", Some("reg.local")).unwrap();
        assert_eq!(r.to_string(), "reg.local/busybox:latest");
        let r = Reference::parse_with_default("other.io/x", Some("reg.local")).unwrap();
        assert_eq!(r.registry(), "other.io");
        assert!(Reference::parse_with_default("x", Some("bad host")).is_err());
    }

    #[test]
    fn derived_references() {
        let r = Reference::parse("r.io/a:v1").unwrap();
        let d = Digest::parse(D).unwrap();
        assert_eq!(r.with_digest(d.clone()).to_string(), format!("r.io/a@{D}"));
        assert_eq!(r.with_tag("v2").unwrap().to_string(), "r.io/a:v2");
        assert!(r.with_tag("-x").is_err());
        assert_eq!(r.with_repository("b/c").unwrap().to_string(), "r.io/b/c:v1");
        assert!(r.with_repository("B").is_err());
    }
}
