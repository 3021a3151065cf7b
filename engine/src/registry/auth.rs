//! Authentication: `WWW-Authenticate` challenges, token responses, and what the client
//! remembers between requests (per endpoint host: the challenge it got; per host, scope
//! and credentials: the bearer token until it expires).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use super::Credentials;

/// A challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="…"`: send the credentials with every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: get a token from the realm.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The first Basic or Bearer challenge among the header values (each may hold several
/// challenges); other schemes are ignored.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    values.into_iter().find_map(parse_header)
}

fn parse_header(header: &str) -> Option<Challenge> {
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = split_token(rest);
        let (params, after) = parse_params(after);
        rest = after;
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            let realm = get("realm")?;
            return Some(Challenge::Bearer {
                realm,
                service: get("service"),
                scope: get("scope"),
            });
        }
        if scheme.is_empty() {
            break;
        }
    }
    None
}

fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', ',']);
    let end = s.find([' ', ',', '=']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// `k=v, k="quoted \"v\"", …` up to the next challenge (a token not followed by `=`).
fn parse_params(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    loop {
        let trimmed = s.trim_start_matches([' ', ',']);
        let (key, after) = split_token(trimmed);
        if key.is_empty() || !after.trim_start().starts_with('=') {
            return (out, trimmed);
        }
        let after = after.trim_start()[1..].trim_start();
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find([',', ' ']).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key.to_string(), value));
        s = rest;
    }
}

/// A token server's answer (docker's token spec; OAuth2 servers say `access_token`).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it may be used.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        // The spec: a missing or shorter lifetime means 60 s.
        let secs = self.expires_in.unwrap_or(60).max(60);
        // Renew a little early: a tenth of the lifetime, at most 30 s.
        let margin = (secs / 10).min(30);
        Some((token, Duration::from_secs(secs - margin)))
    }
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_header(creds: &Credentials) -> String {
    let pair = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A short fingerprint of credentials (or of none), so a token fetched with one set of
/// credentials is never used for a request that carries another.
pub(crate) fn fingerprint(creds: Option<&Credentials>) -> String {
    let Some(c) = creds else {
        return "anonymous".into();
    };
    let mut h = sha2::Sha256::new();
    for part in [
        c.username.as_str(),
        c.password.as_str(),
        c.identity_token.as_deref().unwrap_or(""),
    ] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cached token's key: (host, scope, credentials fingerprint).
type TokenKey = (String, String, String);

/// What the client remembers: challenges by endpoint host, tokens (with the instant
/// they stop being used) by [`TokenKey`].
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl AuthCache {
    pub(crate) fn challenge(&self, host: &str) -> Option<Challenge> {
        lock(&self.challenges).get(host).cloned()
    }

    pub(crate) fn set_challenge(&self, host: &str, c: Challenge) {
        lock(&self.challenges).insert(host.to_string(), c);
    }

    pub(crate) fn token(&self, host: &str, scope: &str, fp: &str) -> Option<String> {
        let key = (host.to_string(), scope.to_string(), fp.to_string());
        let mut tokens = lock(&self.tokens);
        match tokens.get(&key) {
            Some((t, until)) if Instant::now() < *until => Some(t.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn set_token(
        &self,
        host: &str,
        scope: &str,
        fp: &str,
        token: String,
        ttl: Duration,
    ) {
        let key = (host.to_string(), scope.to_string(), fp.to_string());
        lock(&self.tokens).insert(key, (token, Instant::now() + ttl));
    }

    pub(crate) fn forget_token(&self, host: &str, scope: &str, fp: &str) {
        let key = (host.to_string(), scope.to_string(), fp.to_string());
        lock(&self.tokens).remove(&key);
    }
}

/// Locks, ignoring poisoning (the maps stay consistent: every update is one insert or
/// remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        ]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenges([r#"Basic realm="Registry Realm""#]),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenges(["basic"]), Some(Challenge::Basic));
        // Several challenges, unknown first; unquoted and escaped values; odd spacing.
        let c = parse_challenges([
            r#"Negotiate, Bearer  realm = "http://h/t\"x" , service=svc,scope="repository:a:pull,push""#,
        ]);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/t\"x".into(),
                service: Some("svc".into()),
                scope: Some("repository:a:pull,push".into()),
            })
        );
        assert_eq!(parse_challenges(["Negotiate abc=="]), None);
        assert_eq!(
            parse_challenges([r#"Bearer service="x""#]),
            None,
            "no realm"
        );
        assert_eq!(
            parse_challenges(["", "Digest realm=x", "Basic"]),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn token_lifetimes() {
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("a".into(), Duration::from_secs(270))));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("b".into(), Duration::from_secs(54))));
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"","access_token":"c","expires_in":5}"#).unwrap();
        assert_eq!(t.into_token().unwrap().0, "c");
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }

    #[test]
    fn cache_keys_on_credentials() {
        let cache = AuthCache::default();
        let a = fingerprint(Some(&Credentials::basic("u", "right")));
        let b = fingerprint(Some(&Credentials::basic("u", "wrong")));
        assert_ne!(a, b);
        assert_ne!(a, fingerprint(None));
        cache.set_token("h", "s", &a, "tok".into(), Duration::from_secs(60));
        assert_eq!(cache.token("h", "s", &a).as_deref(), Some("tok"));
        assert_eq!(cache.token("h", "s", &b), None);
        assert_eq!(cache.token("h", "other", &a), None);
        cache.set_token("h", "s", &a, "old".into(), Duration::ZERO);
        assert_eq!(cache.token("h", "s", &a), None, "expired");
        assert_eq!(basic_header(&Credentials::basic("u", "p")), "Basic dTpw");
    }
}
