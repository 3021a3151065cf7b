//! What the registry client is told: insecure registries, mirrors, CA directory,
//! credentials file, limits; and credentials themselves.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The registry client's configuration. `Default` is what berthd uses when its
/// configuration says nothing: loopback registries are insecure, no mirrors, no CA
/// directory, no credentials file, no default registry, 3 concurrent downloads,
/// 3 retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`, or a bare `host` for every port of it) that may be
    /// reached over plain HTTP, or over HTTPS without verifying their certificate (as
    /// docker's `insecure-registries`: HTTPS is tried first, then HTTP).
    pub insecure: Vec<String>,
    /// Whether registries on loopback addresses (`127.0.0.0/8`, `::1`, `localhost`) are
    /// insecure without being listed (docker's default).
    pub insecure_loopback: bool,
    /// Mirrors per registry (`host[:port]` → endpoints tried in order before the
    /// registry itself, for pulls only). An endpoint is `host[:port]` (its scheme
    /// chosen as for a registry) or a URL `http(s)://host[:port][/prefix]`.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Directory of per-registry CA certificates: `<certs_dir>/<host:port>/*.crt`
    /// (docker's `certs.d`), trusted in addition to the system roots.
    pub certs_dir: Option<PathBuf>,
    /// A docker-compatible `config.json` whose `auths` give credentials per registry;
    /// read when a registry asks for them.
    pub credentials_file: Option<PathBuf>,
    /// The registry of references that name none (`team/app:v1`); `None` refuses them.
    pub default_registry: Option<String>,
    /// How many blob downloads may stream at once, over the whole client (each
    /// [`super::BlobResponse`] holds a slot until dropped).
    pub max_concurrent_downloads: usize,
    /// How many times a request is retried after a 5xx, a 429 or a failed connection
    /// (idempotent requests only; a blob body that breaks is resumed by the caller).
    pub retries: u32,
    /// The first retry's delay; each further retry doubles it (capped at 10 s). A 429's
    /// `Retry-After` (up to 30 s) is honoured instead.
    pub backoff: Duration,
    /// Time allowed to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response.
    pub read_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            insecure_loopback: true,
            mirrors: BTreeMap::new(),
            certs_dir: None,
            credentials_file: None,
            default_registry: None,
            max_concurrent_downloads: 3,
            retries: 3,
            backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl RegistryConfig {
    /// Whether `host` (`host[:port]`) may be reached without TLS verification.
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = strip_port(host);
        if self.insecure_loopback && is_loopback(bare) {
            return true;
        }
        self.insecure
            .iter()
            .any(|i| i.eq_ignore_ascii_case(host) || (!has_port(i) && i.eq_ignore_ascii_case(bare)))
    }
}

/// `host` of `host[:port]` (brackets of an IPv6 address kept off).
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.split_once(']').map_or(inner, |(a, _)| a);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

fn has_port(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(inner) => inner
            .split_once(']')
            .is_some_and(|(_, p)| p.starts_with(':')),
        None => host.contains(':'),
    }
}

fn is_loopback(bare: &str) -> bool {
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Credentials for one registry: a user name and password (or access token used as
/// one), and optionally an identity token (an OAuth2 refresh token, as `docker login`
/// stores for some registries; used instead of the password at bearer token servers).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
    /// OAuth2 refresh token (docker config's `identitytoken`).
    pub identity_token: Option<String>,
}

impl Credentials {
    /// User name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    /// Whether there is a user name and password to send (not only a token).
    pub(crate) fn has_password(&self) -> bool {
        !self.username.is_empty() || !self.password.is_empty()
    }
}

impl fmt::Debug for Credentials {
    /// Never prints the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts() {
        let mut c = RegistryConfig::default();
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(c.is_insecure(h), "{h}");
        }
        assert!(!c.is_insecure("reg.example.com:5000"));
        c.insecure = vec!["reg.example.com".into(), "other.io:5000".into()];
        assert!(c.is_insecure("reg.example.com:5000"));
        assert!(c.is_insecure("REG.example.com"));
        assert!(c.is_insecure("other.io:5000"));
        assert!(!c.is_insecure("other.io:5001"));
        assert!(!c.is_insecure("other.io"));
        c.insecure_loopback = false;
        assert!(!c.is_insecure("127.0.0.1:5000"));
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = Credentials::basic("alice", "s3cret");
        c.identity_token = Some("tok".into());
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
