//! Credentials in a docker-compatible `config.json`:
//! `{"auths": {"host:port": {"auth": base64("user:pass"), "identitytoken": "…"}}}`.
//!
//! [`load`] reads every entry (`auth`, or `username` + `password`, and
//! `identitytoken`); keys may be written as docker does for old registries
//! (`https://host/v1/`): the scheme and path are ignored. [`store`] and [`erase`] rewrite
//! the file keeping every other key (`credHelpers`, `psFormat`, …) as it was, through a
//! temporary file in the same directory (mode 0600, fsync) renamed over it.
//! Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::Credentials;
use crate::{EngineError, Result};

/// The registry a config key names: `https://host:port/v1/` → `host:port`.
pub fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Every registry's credentials in the file at `path`, by registry (`host[:port]`).
/// A missing file holds none. Entries that hold neither credentials nor a token are
/// skipped.
pub fn load(path: &Path) -> Result<BTreeMap<String, Credentials>> {
    let Some(root) = read(path)? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    let Some(auths) = root.get("auths") else {
        return Ok(out);
    };
    let Value::Object(auths) = auths else {
        return Err(malformed(path, "\"auths\" is not an object"));
    };
    for (key, entry) in auths {
        let registry = normalize_key(key);
        if let Some(creds) = entry_credentials(path, registry, entry)? {
            out.insert(registry.to_string(), creds);
        }
    }
    Ok(out)
}

/// The credentials for `registry` in the file at `path`, if any.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let mut all = load(path)?;
    Ok(all.remove(registry))
}

/// Records `creds` for `registry` in the file at `path` (created with its directory if
/// missing), replacing any entry for the same registry.
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut root = read(path)?.unwrap_or_default();
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(malformed(path, "\"auths\" is not an object"));
    };
    auths.retain(|k, _| normalize_key(k) != registry);
    let mut entry = Map::new();
    if creds.has_password() {
        let pair = format!("{}:{}", creds.username, creds.password);
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(pair)),
        );
    }
    if let Some(t) = &creds.identity_token {
        entry.insert("identitytoken".into(), Value::String(t.clone()));
    }
    auths.insert(registry.to_string(), Value::Object(entry));
    write(path, &root)
}

/// Removes the entry for `registry`; whether there was one.
pub fn erase(path: &Path, registry: &str) -> Result<bool> {
    let Some(mut root) = read(path)? else {
        return Ok(false);
    };
    let Some(Value::Object(auths)) = root.get_mut("auths") else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != registry);
    if auths.len() == before {
        return Ok(false);
    }
    write(path, &root)?;
    Ok(true)
}

fn entry_credentials(path: &Path, registry: &str, entry: &Value) -> Result<Option<Credentials>> {
    let Value::Object(e) = entry else {
        return Err(malformed(
            path,
            &format!("the entry for {registry:?} is not an object"),
        ));
    };
    let text = |k: &str| -> Result<Option<String>> {
        match e.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed(
                path,
                &format!("{registry:?}.{k} is not a string"),
            )),
        }
    };
    let mut creds = Credentials::default();
    if let Some(auth) = text("auth")? {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| malformed(path, &format!("{registry:?}.auth is not base64")))?;
        let pair = String::from_utf8(raw)
            .map_err(|_| malformed(path, &format!("{registry:?}.auth is not UTF-8")))?;
        let Some((u, p)) = pair.split_once(':') else {
            return Err(malformed(
                path,
                &format!("{registry:?}.auth is not user:password"),
            ));
        };
        creds.username = u.to_string();
        creds.password = p.to_string();
    } else {
        creds.username = text("username")?.unwrap_or_default();
        creds.password = text("password")?.unwrap_or_default();
    }
    creds.identity_token = text("identitytoken")?;
    if !creds.has_password() && creds.identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(creds))
}

fn read(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EngineError::Internal(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            )))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(malformed(path, "it is not a JSON object")),
        Err(e) => Err(malformed(path, &format!("it is not valid JSON: {e}"))),
    }
}

fn write(path: &Path, root: &Map<String, Value>) -> Result<()> {
    let fail = |what: &str, e: io::Error| {
        EngineError::Internal(format!(
            "cannot {what} credentials file {}: {e}",
            path.display()
        ))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create the directory of", e))?;
    let name = path.file_name().map_or_else(
        || "config.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(root.clone()))
        .map_err(|e| EngineError::Internal(format!("cannot encode credentials: {e}")))?;
    bytes.push(b'\n');
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

fn malformed(path: &Path, why: &str) -> EngineError {
    EngineError::InvalidArgument(format!(
        "credentials file {} is malformed: {why}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn store_load_erase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        assert!(load(&path).unwrap().is_empty());
        store(
            &path,
            "127.0.0.1:5000",
            &Credentials::basic("alice", "pa:ss"),
        )
        .unwrap();
        let tok = Credentials {
            identity_token: Some("refresh".into()),
            ..Credentials::default()
        };
        store(&path, "reg.io", &tok).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let all = load(&path).unwrap();
        assert_eq!(all["127.0.0.1:5000"], Credentials::basic("alice", "pa:ss"));
        assert_eq!(all["reg.io"], tok);
        let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            raw["auths"]["127.0.0.1:5000"]["auth"],
            base64::engine::general_purpose::STANDARD.encode("alice:pa:ss")
        );
        // Replacing keeps one entry; erase removes it.
        store(&path, "127.0.0.1:5000", &Credentials::basic("bob", "x")).unwrap();
        assert_eq!(
            lookup(&path, "127.0.0.1:5000").unwrap().unwrap().username,
            "bob"
        );
        assert!(erase(&path, "127.0.0.1:5000").unwrap());
        assert!(!erase(&path, "127.0.0.1:5000").unwrap());
        assert!(lookup(&path, "127.0.0.1:5000").unwrap().is_none());
        assert!(lookup(&path, "reg.io").unwrap().is_some());
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn keeps_other_keys_and_reads_docker_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths": {"https://old.io/v1/": {"auth": "dTpw"},
                          "plain.io": {"username": "u2", "password": "p2"},
                          "empty.io": {}},
                "credHelpers": {"x.io": "pass"}, "psFormat": "table"}"#,
        )
        .unwrap();
        let all = load(&path).unwrap();
        assert_eq!(all["old.io"], Credentials::basic("u", "p"));
        assert_eq!(all["plain.io"], Credentials::basic("u2", "p2"));
        assert!(!all.contains_key("empty.io"));
        store(&path, "old.io", &Credentials::basic("n", "m")).unwrap();
        let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "table");
        assert_eq!(raw["credHelpers"]["x.io"], "pass");
        assert!(raw["auths"].get("https://old.io/v1/").is_none());
        assert_eq!(load(&path).unwrap()["old.io"], Credentials::basic("n", "m"));
    }

    #[test]
    fn malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for bad in [
            "{",
            "[]",
            r#"{"auths": []}"#,
            r#"{"auths": {"a.io": {"auth": "!!"}}}"#,
            r#"{"auths": {"a.io": {"auth": "bm9jb2xvbg=="}}}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let e = load(&path).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("config.json is malformed"), "{e}");
        }
        fs::write(&path, "  \n").unwrap();
        assert!(load(&path).unwrap().is_empty());
    }
}
