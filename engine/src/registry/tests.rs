//! The registry client against Debian's real `docker-registry` (started per test on
//! 127.0.0.1 with a random port, killed at the end) and small fake servers for what a
//! real registry will not do (schema 1, 5xx, dropped connections, bearer tokens).
//! Tests print why and pass when docker-registry (or htpasswd, openssl) is missing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::testutil::*;
use super::*;
use crate::ids::Digest;
use crate::image::media;
use crate::ErrorKind;

/// A client with fast retries (tests do not wait for back-off).
fn config() -> RegistryConfig {
    RegistryConfig {
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(config()).unwrap()
}

/// Reads a whole blob response.
async fn drain(b: &mut BlobResponse) -> Result<Vec<u8>, crate::EngineError> {
    let mut out = Vec::new();
    while let Some(c) = b.next_chunk().await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn d(b: &[u8]) -> Digest {
    Digest::of_bytes(b)
}

#[test]
fn push_then_pull_round_trip() {
    let Some(reg) = TestRegistry::start(RegistryOpts::default()) else {
        return;
    };
    let c = client();
    let img = TestImage::new(1, &[300_000, 1_500, 70_000]);
    let target = reg.reference("team/app:v1");
    block_on(async {
        // Nothing there yet.
        let cfg = d(&img.config);
        assert!(!c.blob_exists(&target, &cfg, None).await.unwrap());
        let pushed = img.push(&c, &target, None).await.unwrap();
        assert_eq!(pushed, img.manifest_digest());
        assert!(c.blob_exists(&target, &cfg, None).await.unwrap());

        // By tag, then by digest: same bytes, verified digest.
        let (desc, bytes) = c.resolve(&target, None).await.unwrap();
        assert_eq!(desc.digest, pushed);
        assert_eq!(desc.media_type, media::OCI_MANIFEST);
        assert_eq!(desc.size, u64::try_from(img.manifest.len()).unwrap());
        assert_eq!(bytes, img.manifest);
        let by_digest = target.with_digest(pushed.clone());
        let (desc2, bytes2) = c.resolve(&by_digest, None).await.unwrap();
        assert_eq!((desc2, bytes2), (desc.clone(), bytes.clone()));
        let (desc3, _) = c.fetch_manifest(&target, &pushed, None).await.unwrap();
        assert_eq!(desc3, desc);

        // Blobs, whole: content and digest match.
        for blob in img.blobs() {
            let mut r = c.fetch_blob(&target, &d(&blob), 0, None).await.unwrap();
            assert!(!r.resumed());
            assert_eq!(r.size(), Some(u64::try_from(blob.len()).unwrap()));
            let got = drain(&mut r).await.unwrap();
            assert_eq!(d(&got), d(&blob));
            assert_eq!(r.position(), u64::try_from(blob.len()).unwrap());
        }
        // From an offset: 206, the rest matches.
        let layer = &img.layers[0];
        let mut r = c
            .fetch_blob(&target, &d(layer), 123_457, None)
            .await
            .unwrap();
        assert!(r.resumed());
        assert_eq!(r.start(), 123_457);
        assert_eq!(r.size(), Some(300_000));
        assert_eq!(drain(&mut r).await.unwrap(), layer[123_457..].to_vec());
        assert_eq!(
            c.fetch_blob_bytes(&target, &cfg, 1 << 20, None)
                .await
                .unwrap(),
            img.config
        );
        let e = c
            .fetch_blob_bytes(&target, &d(layer), 1000, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

        // Missing things.
        let e = c
            .resolve(&reg.reference("team/app:nope"), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_eq!(
            e.to_string(),
            format!("image \"{}/team/app:nope\" not found", reg.host())
        );
        let e = c
            .resolve(&reg.reference("other/repo:v1"), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let absent = d(b"absent");
        let e = c.fetch_blob(&target, &absent, 0, None).await.unwrap_err();
        assert_eq!(
            e,
            crate::EngineError::NotFound {
                kind: "blob",
                id: format!("{}/team/app@{absent}", reg.host())
            }
        );

        // Cross-repository mount: no upload, the blob is then there.
        let other = reg.reference("team/copy:v1");
        assert!(!c.blob_exists(&other, &d(layer), None).await.unwrap());
        assert!(c
            .mount_blob(&other, &d(layer), "team/app", None)
            .await
            .unwrap());
        assert!(c.blob_exists(&other, &d(layer), None).await.unwrap());
        // A blob the source does not have is not mounted.
        assert!(!c
            .mount_blob(&other, &absent, "team/app", None)
            .await
            .unwrap());
        let e = c
            .mount_blob(&other, &absent, "Bad/Repo", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);

        // An index over the manifest, pushed by tag and resolved as an index.
        let index = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            pushed,
            img.manifest.len()
        ));
        let multi = reg.reference("team/app:multi");
        let idx = c
            .push_manifest(&multi, media::OCI_INDEX, index.clone(), None)
            .await
            .unwrap();
        let (desc, bytes) = c.resolve(&multi, None).await.unwrap();
        assert_eq!(
            (desc.media_type.as_str(), desc.digest),
            (media::OCI_INDEX, idx)
        );
        assert_eq!(bytes, index);

        // Pushing by digest: the digest must be the bytes'.
        let wrong = reg.reference("team/app").with_digest(absent.clone());
        let e = c
            .push_manifest(&wrong, media::OCI_MANIFEST, img.manifest.clone(), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let right = reg.reference("team/app").with_digest(pushed.clone());
        assert_eq!(
            c.push_manifest(&right, media::OCI_MANIFEST, img.manifest.clone(), None)
                .await
                .unwrap(),
            pushed
        );

        // Uploads: a streamed body, and bodies that lie about their size or digest.
        let big = TestImage::new(9, &[2_000_000]).layers[0].clone();
        let chunks: Vec<crate::Result<Bytes>> = big
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        c.push_blob(
            &target,
            &d(&big),
            2_000_000,
            UploadBody::from_stream(futures_util::stream::iter(chunks)),
            None,
        )
        .await
        .unwrap();
        let mut r = c.fetch_blob(&target, &d(&big), 0, None).await.unwrap();
        assert_eq!(d(&drain(&mut r).await.unwrap()), d(&big));
        let short = big.slice(..1000);
        let e = c
            .push_blob(
                &target,
                &d(&short),
                2000,
                UploadBody::from_stream(futures_util::stream::iter(vec![Ok(short.clone())])),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("ended after 1000 of the 2000 bytes"),
            "{e}"
        );
        let e = c
            .push_blob(&target, &d(b"x"), 1000, short.clone(), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        // A streamed body whose digest is wrong: the registry refuses it.
        let e = c
            .push_blob(
                &target,
                &d(b"x"),
                1000,
                UploadBody::from_stream(futures_util::stream::iter(vec![Ok(short)])),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
        // From an async reader.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &img.layers[1]).unwrap();
        let reader = tokio::fs::File::open(file.path()).await.unwrap();
        let fresh = reg.reference("reader/test:v1");
        c.push_blob(
            &fresh,
            &d(&img.layers[1]),
            1500,
            UploadBody::from_reader(reader),
            None,
        )
        .await
        .unwrap();
        assert!(c
            .blob_exists(&fresh, &d(&img.layers[1]), None)
            .await
            .unwrap());
    });
}

#[test]
fn bad_input_and_unreachable_registries() {
    for bad in [
        "",
        "UPPER/Case:tag",
        "reg.io/a//b",
        "busybox",
        "reg.io/app:bad tag",
        "reg.io:99999/app",
    ] {
        let e = Reference::parse(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    let mut cfg = config();
    cfg.retries = 1;
    let c = RegistryClient::new(cfg).unwrap();
    block_on(async {
        // A closed loopback port (insecure: HTTPS then HTTP, both refused).
        let port = free_port();
        let r = Reference::parse(&format!("127.0.0.1:{port}/app:v1")).unwrap();
        let e = c.resolve(&r, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach registry 127.0.0.1:{port}: ")),
            "{e}"
        );
        assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
        // A host that does not resolve.
        let r = Reference::parse("nonexistent.invalid:5000/app:v1").unwrap();
        let e = tokio::time::timeout(Duration::from_secs(30), c.resolve(&r, None))
            .await
            .expect("a DNS failure within 30 s")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.to_string()
                .starts_with("registry host nonexistent.invalid:5000 does not resolve"),
            "{e}"
        );
    });
}

#[test]
fn schema1_is_refused() {
    let body = r#"{"schemaVersion":1,"name":"app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let fake = TestServer::start(move |req| {
        let ct = if req.path().ends_with("/signed") {
            media::DOCKER_SCHEMA1_SIGNED
        } else {
            "application/json"
        };
        Reply::new(200).header("Content-Type", ct).body(body)
    });
    let c = client();
    block_on(async {
        for tag in ["signed", "plain"] {
            let r = Reference::parse(&format!("{}/app:{tag}", fake.host())).unwrap();
            let e = c.resolve(&r, None).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains(media::SCHEMA1_REFUSAL), "{e}");
            assert!(e.to_string().contains(&fake.host()), "{e}");
        }
        let r = Reference::parse(&format!("{}/app:v1", fake.host())).unwrap();
        let e = c
            .push_manifest(&r, media::DOCKER_SCHEMA1_MANIFEST, Bytes::from(body), None)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), media::SCHEMA1_REFUSAL);
    });
}

#[test]
fn manifests_are_verified_and_capped() {
    let img = TestImage::new(2, &[10]);
    let manifest = img.manifest.clone();
    let fake = TestServer::start(move |req| match req.path() {
        "/v2/app/manifests/lying" => Reply::new(200)
            .header("Content-Type", media::OCI_MANIFEST)
            .header("Docker-Content-Digest", d(b"other").as_str())
            .body(manifest.to_vec()),
        "/v2/app/manifests/huge" => Reply::new(200)
            .header("Content-Type", media::OCI_MANIFEST)
            .body(vec![b' '; MAX_MANIFEST_BYTES + 1]),
        "/v2/app/manifests/html" => Reply::new(200)
            .header("Content-Type", "text/html")
            .body("<html></html>"),
        _ => Reply::new(200)
            .header("Content-Type", media::OCI_MANIFEST)
            .body(manifest.to_vec()),
    });
    let c = client();
    block_on(async {
        let r = |t: &str| Reference::parse(&format!("{}/app{t}", fake.host())).unwrap();
        let e = c.resolve(&r(":lying"), None).await.unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let e = c.resolve(&r(":huge"), None).await.unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = c.resolve(&r(":html"), None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        // By digest, the content must hash to it.
        let e = c
            .resolve(&r(&format!("@{}", d(b"x"))), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let (desc, _) = c
            .resolve(&r(&format!("@{}", img.manifest_digest())), None)
            .await
            .unwrap();
        assert_eq!(desc.digest, img.manifest_digest());
    });
}

#[test]
fn retries_after_server_errors() {
    let img = TestImage::new(3, &[10]);
    let manifest = img.manifest.clone();
    let failures = Arc::new(AtomicUsize::new(0));
    let left = failures.clone();
    let fake = TestServer::start(move |_| {
        if left.load(Ordering::SeqCst) > 0 {
            left.fetch_sub(1, Ordering::SeqCst);
            return Reply::new(503).body(r#"{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}"#);
        }
        Reply::new(200)
            .header("Content-Type", media::OCI_MANIFEST)
            .body(manifest.to_vec())
    });
    let r = Reference::parse(&format!("{}/app:v1", fake.host())).unwrap();
    block_on(async {
        // Two failures, three retries: the third try works.
        failures.store(2, Ordering::SeqCst);
        let (desc, _) = client().resolve(&r, None).await.unwrap();
        assert_eq!(desc.digest, img.manifest_digest());
        // 429 too.
        let mut cfg = config();
        cfg.retries = 1;
        let strict = RegistryClient::new(cfg).unwrap();
        failures.store(2, Ordering::SeqCst);
        let e = strict.resolve(&r, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("503"), "{e}");
        assert!(e.to_string().contains("UNAVAILABLE: busy"), "{e}");
    });
    // 2 (the first client, then success) + 1 + 2 (the strict client).
    assert_eq!(fake.hits(), 3 + 2);
}

#[test]
fn broken_downloads_resume_with_range() {
    let blob = TestImage::new(4, &[100_000]).layers[0].clone();
    let digest = d(&blob);
    let served = blob.clone();
    let honour_range = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let honour = honour_range.clone();
    let fake = TestServer::start(move |req| {
        let range = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok());
        match range {
            Some(start) if honour.load(Ordering::SeqCst) => Reply::new(206)
                .header(
                    "Content-Range",
                    &format!("bytes {start}-{}/{}", served.len() - 1, served.len()),
                )
                .body(served[start..].to_vec()),
            _ => {
                // The whole blob announced, 40 000 bytes sent, then the connection drops.
                let mut r = Reply::new(200).body(served.to_vec());
                r.cut_after = Some(40_000);
                r
            }
        }
    });
    let r = Reference::parse(&format!("{}/app:v1", fake.host())).unwrap();
    let c = client();
    block_on(async {
        let mut first = c.fetch_blob(&r, &digest, 0, None).await.unwrap();
        let mut got = Vec::new();
        let e = loop {
            match first.next_chunk().await {
                Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                Ok(None) => panic!("the body should break"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(
            e.to_string()
                .contains(&format!("fetching blob {digest} at byte 40000")),
            "{e}"
        );
        assert_eq!(first.position(), 40_000);
        assert_eq!(got.len(), 40_000);
        drop(first);
        let mut rest = c.fetch_blob(&r, &digest, 40_000, None).await.unwrap();
        assert!(rest.resumed());
        assert_eq!(rest.size(), Some(100_000));
        got.extend(drain(&mut rest).await.unwrap());
        assert_eq!(d(&got), digest);
        // fetch_blob_bytes does the same by itself.
        assert_eq!(
            c.fetch_blob_bytes(&r, &digest, 1 << 20, None)
                .await
                .unwrap(),
            blob
        );
        // A server that ignores Range sends the whole blob: not resumed.
        honour_range.store(false, Ordering::SeqCst);
        let whole = c.fetch_blob(&r, &digest, 40_000, None).await.unwrap();
        assert!(!whole.resumed());
        assert_eq!(whole.start(), 0);
    });
}

#[test]
fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let Some(htpasswd) = htpasswd_file(dir.path(), "alice", "right-pass") else {
        return;
    };
    let Some(reg) = TestRegistry::start(RegistryOpts {
        htpasswd: Some(htpasswd),
        ..RegistryOpts::default()
    }) else {
        return;
    };
    let img = TestImage::new(5, &[5_000]);
    let target = reg.reference("private/app:v1");
    let right = Credentials::basic("alice", "right-pass");
    let wrong = Credentials::basic("alice", "wrong-pass");
    block_on(async {
        let c = client();
        let digest = img.push(&c, &target, Some(&right)).await.unwrap();
        let (desc, _) = c.resolve(&target, Some(&right)).await.unwrap();
        assert_eq!(desc.digest, digest);

        // Wrong credentials, then none: Unauthenticated, clearly worded.
        let e = c.resolve(&target, Some(&wrong)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "registry {} refused the credentials for private/app",
                reg.host()
            )
        );
        let e = client().resolve(&target, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(
            e.to_string()
                .contains("requires authentication for private/app"),
            "{e}"
        );
        let e = c
            .push_manifest(
                &target,
                media::OCI_MANIFEST,
                img.manifest.clone(),
                Some(&wrong),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");

        // From a docker config.json written as `berth login` will.
        let creds_file = dir.path().join("docker/config.json");
        docker_config::store(&creds_file, &reg.host(), &right).unwrap();
        let mut cfg = config();
        cfg.credentials_file = Some(creds_file);
        let from_file = RegistryClient::new(cfg).unwrap();
        let (desc, _) = from_file.resolve(&target, None).await.unwrap();
        assert_eq!(desc.digest, digest);
        let mut blob = from_file
            .fetch_blob(&target, &d(&img.layers[0]), 0, None)
            .await
            .unwrap();
        assert_eq!(drain(&mut blob).await.unwrap(), img.layers[0].to_vec());
        // The request's credentials win over the file's.
        let e = from_file.resolve(&target, Some(&wrong)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    });
}

#[test]
fn tls_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = make_certs(dir.path()) else {
        return;
    };
    let Some(reg) = TestRegistry::start(RegistryOpts {
        tls: Some((cert, key)),
        ..RegistryOpts::default()
    }) else {
        return;
    };
    let certs_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(certs_dir.join(reg.host())).unwrap();
    std::fs::copy(&ca, certs_dir.join(reg.host()).join("ca.crt")).unwrap();
    let img = TestImage::new(6, &[20_000]);
    let target = reg.reference("secure/app:v1");
    block_on(async {
        // Verified TLS: loopback not treated as insecure, the CA from certs.d.
        let mut cfg = config();
        cfg.insecure_loopback = false;
        cfg.certs_dir = Some(certs_dir.clone());
        let verified = RegistryClient::new(cfg).unwrap();
        let digest = img.push(&verified, &target, None).await.unwrap();
        let (desc, _) = verified.resolve(&target, None).await.unwrap();
        assert_eq!(desc.digest, digest);
        let mut r = verified
            .fetch_blob(&target, &d(&img.layers[0]), 100, None)
            .await
            .unwrap();
        assert!(r.resumed());
        assert_eq!(drain(&mut r).await.unwrap(), img.layers[0][100..].to_vec());

        // Without the CA the certificate is not trusted.
        let mut cfg = config();
        cfg.insecure_loopback = false;
        cfg.retries = 0;
        let untrusting = RegistryClient::new(cfg).unwrap();
        let e = untrusting.resolve(&target, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(
            e.to_string()
                .contains(&format!("cannot reach registry {}", reg.host())),
            "{e}"
        );
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

        // Loopback is insecure by default: HTTPS without verification (docker's way).
        let (desc, _) = client().resolve(&target, None).await.unwrap();
        assert_eq!(desc.digest, digest);
    });
}

#[test]
fn bearer_token_flow() {
    let Some(reg) = TestRegistry::start(RegistryOpts::default()) else {
        return;
    };
    let tokens = TokenServer::start("bob", "hunter2", "refresh-me", "sesame");
    let realm = tokens.realm();
    // The proxy lets through only requests bearing the token.
    let proxy = TestServer::proxy(reg.port, move |req| {
        if req.header("authorization") == Some("Bearer sesame") {
            return None;
        }
        let repo = req
            .path()
            .strip_prefix("/v2/")
            .and_then(|p| p.split("/manifests/").next())
            .and_then(|p| p.split("/blobs/").next())
            .unwrap_or("");
        Some(
            Reply::new(401)
                .header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="{realm}",service="berth-test",scope="repository:{repo}:pull""#),
                )
                .header("Content-Type", "application/json")
                .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#),
        )
    });
    let img = TestImage::new(7, &[50_000, 10]);
    let target = Reference::parse(&format!("{}/tok/app:v1", proxy.host())).unwrap();
    let right = Credentials::basic("bob", "hunter2");
    block_on(async {
        let c = client();
        let digest = img.push(&c, &target, Some(&right)).await.unwrap();
        let (desc, _) = c.resolve(&target, Some(&right)).await.unwrap();
        assert_eq!(desc.digest, digest);
        let mut r = c
            .fetch_blob(&target, &d(&img.layers[0]), 0, Some(&right))
            .await
            .unwrap();
        assert_eq!(drain(&mut r).await.unwrap(), img.layers[0].to_vec());
        // Tokens are cached per scope: one for push, one for pull.
        let asked = tokens.scopes.lock().unwrap().clone();
        assert_eq!(tokens.server.hits(), 2, "{asked:?}");
        assert!(
            asked.contains(&"repository:tok/app:pull,push".to_string()),
            "{asked:?}"
        );
        assert!(
            asked.contains(&"repository:tok/app:pull".to_string()),
            "{asked:?}"
        );

        // Mount across repositories asks for pull on the source too.
        let other = Reference::parse(&format!("{}/tok/copy:v1", proxy.host())).unwrap();
        assert!(c
            .mount_blob(&other, &d(&img.layers[0]), "tok/app", Some(&right))
            .await
            .unwrap());
        assert!(tokens
            .scopes
            .lock()
            .unwrap()
            .contains(&"repository:tok/app:pull".to_string()));

        // Anonymous: the token server refuses.
        let e = client().resolve(&target, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(
            e.to_string()
                .contains("requires authentication for tok/app"),
            "{e}"
        );
        // Wrong credentials: refused, never served from the cache of the right ones.
        let e = c
            .resolve(&target, Some(&Credentials::basic("bob", "nope")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "registry {} refused the credentials for tok/app",
                proxy.host()
            )
        );
        // An identity token (OAuth2 refresh token) instead of a password.
        let id = Credentials {
            identity_token: Some("refresh-me".into()),
            ..Credentials::default()
        };
        let (desc, _) = client().resolve(&target, Some(&id)).await.unwrap();
        assert_eq!(desc.digest, digest);
    });
}

#[test]
fn mirrors_are_tried_in_order_for_pulls() {
    let Some(origin) = TestRegistry::start(RegistryOpts::default()) else {
        return;
    };
    let Some(mirror) = TestRegistry::start(RegistryOpts::default()) else {
        return;
    };
    let not_found = TestServer::start(|_| {
        Reply::new(404).body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}"#)
    });
    let down = free_port();
    let img = TestImage::new(8, &[30_000]);
    let only_mirror = TestImage::new(10, &[1_000]);
    block_on(async {
        let plain = client();
        let on_origin = origin.reference("mirrored/app:v1");
        let digest = img.push(&plain, &on_origin, None).await.unwrap();
        // The mirror holds an image the origin does not.
        let on_mirror = mirror.reference("mirrored/only:v1");
        only_mirror.push(&plain, &on_mirror, None).await.unwrap();

        // A mirror that is down, one that 404s, then the origin.
        let mut cfg = config();
        cfg.retries = 0;
        cfg.mirrors = BTreeMap::from([(
            origin.host(),
            vec![
                format!("127.0.0.1:{down}"),
                format!("http://{}", not_found.host()),
            ],
        )]);
        let c = RegistryClient::new(cfg).unwrap();
        let (desc, _) = c.resolve(&on_origin, None).await.unwrap();
        assert_eq!(desc.digest, digest);
        let mut r = c
            .fetch_blob(&on_origin, &d(&img.layers[0]), 0, None)
            .await
            .unwrap();
        assert_eq!(r.host(), origin.host());
        assert_eq!(drain(&mut r).await.unwrap(), img.layers[0].to_vec());
        assert_eq!(not_found.hits(), 2, "the 404 mirror was asked for each");
        // Push never uses mirrors.
        let pushed = origin.reference("mirrored/pushed:v1");
        only_mirror.push(&c, &pushed, None).await.unwrap();
        assert_eq!(not_found.hits(), 2);
        assert!(plain.resolve(&pushed, None).await.is_ok());

        // A working mirror is used first: it serves what the origin lacks.
        let mut cfg = config();
        cfg.mirrors = BTreeMap::from([(origin.host(), vec![mirror.host()])]);
        let c = RegistryClient::new(cfg).unwrap();
        let via_mirror = origin.reference("mirrored/only:v1");
        let (desc, _) = c.resolve(&via_mirror, None).await.unwrap();
        assert_eq!(desc.digest, only_mirror.manifest_digest());
        let mut r = c
            .fetch_blob(&via_mirror, &d(&only_mirror.layers[0]), 0, None)
            .await
            .unwrap();
        assert_eq!(r.host(), mirror.host());
        assert_eq!(drain(&mut r).await.unwrap(), only_mirror.layers[0].to_vec());
        // When the mirror lacks it, the origin serves it.
        let (desc, _) = c.resolve(&on_origin, None).await.unwrap();
        assert_eq!(desc.digest, digest);
        let e = plain.resolve(&via_mirror, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    });
}

#[test]
fn download_slots_are_bounded() {
    let Some(reg) = TestRegistry::start(RegistryOpts::default()) else {
        return;
    };
    let img = TestImage::new(11, &[1_000, 2_000]);
    let target = reg.reference("slots/app:v1");
    let mut cfg = config();
    cfg.max_concurrent_downloads = 1;
    let c = RegistryClient::new(cfg).unwrap();
    block_on(async {
        img.push(&c, &target, None).await.unwrap();
        let first = c
            .fetch_blob(&target, &d(&img.layers[0]), 0, None)
            .await
            .unwrap();
        // The second waits for the first's slot.
        let second = tokio::time::timeout(
            Duration::from_millis(300),
            c.fetch_blob(&target, &d(&img.layers[1]), 0, None),
        )
        .await;
        assert!(second.is_err(), "the second download should wait");
        drop(first);
        let mut second = c
            .fetch_blob(&target, &d(&img.layers[1]), 0, None)
            .await
            .unwrap();
        assert_eq!(drain(&mut second).await.unwrap(), img.layers[1].to_vec());
    });
}
