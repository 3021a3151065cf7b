//! Bad imports: each is a 4xx JSON error naming the problem, stores no image, and leaves
//! nothing behind that a collection would not remove — the content store, snapshots and
//! their storage are exactly as before, and no ingest is left.

use std::collections::BTreeMap;

use berth_mkimage::{assemble, other_platform, Options};
use berth_tests::storage::*;
use berth_tests::TestDaemon;

/// An OCI layout as files, to be broken in various ways and tarred.
#[derive(Clone)]
struct Layout {
    files: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_slice(&self.files[path]).unwrap()
    }

    /// The descriptor `index.json` names (the only one).
    fn top(&self) -> serde_json::Value {
        self.json("index.json")["manifests"][0].clone()
    }

    fn manifest(&self) -> serde_json::Value {
        let digest = self.top()["digest"].as_str().unwrap().to_string();
        self.json(&blob_path(&digest))
    }

    /// Replaces the blob `old` by `bytes`; returns the new digest and size.
    fn replace_blob(&mut self, old: &str, bytes: Vec<u8>) -> (String, usize) {
        self.files.remove(&blob_path(old)).expect("the blob exists");
        let digest = sha256(&bytes);
        let size = bytes.len();
        self.files.insert(blob_path(&digest), bytes);
        (digest, size)
    }

    /// Replaces the manifest by `manifest` and points `index.json` at it.
    fn set_manifest(&mut self, manifest: &serde_json::Value) {
        let old = self.top()["digest"].as_str().unwrap().to_string();
        let (digest, size) = self.replace_blob(&old, serde_json::to_vec(manifest).unwrap());
        let mut index = self.json("index.json");
        index["manifests"][0]["digest"] = digest.into();
        index["manifests"][0]["size"] = size.into();
        self.files
            .insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    }

    fn tar(&self) -> Vec<u8> {
        tar_of(&self.files)
    }
}

/// A little deterministic noise.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

struct Case {
    what: &'static str,
    body: Vec<u8>,
    query: String,
    status: u16,
    kind: &'static str,
    /// Every one of these must be in the message.
    says: Vec<String>,
    /// Whether the daemon got as far as starting the import (journaled).
    started: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_imports_are_refused_and_leave_nothing() {
    let d = TestDaemon::start();
    let c = d.client();

    // Baseline: one good image (a docker archive: its blobs are the plain layer tars,
    // so none of the busybox OCI archive's blobs below is in the store yet).
    let (ly_file, _) = build_image(d.dir(), ImageKind::Layers, Format::DockerArchive, None);
    import(&c, &ly_file, "").await;
    let baseline = storage_view(&d, "default").await;
    baseline.assert_consistent();
    assert_eq!(baseline.images.len(), 1);

    let (bb_dir, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciDir, None);
    let good = Layout {
        files: read_layout(&bb_dir),
    };
    let layer = bb.layer_digests[0].to_string();
    let config = bb.config_digest.to_string();
    let full = good.tar();
    let (ma_file, _) = build_image(d.dir(), ImageKind::Multiarch, Format::OciArchive, None);
    let multiarch = std::fs::read(&ma_file).unwrap();
    let ma = assemble(berth_mkimage::ImageKind::Multiarch, &Options::default()).unwrap();
    let host = ma.manifests[0].platform.clone();
    let other = other_platform(&berth_engine::image::Platform::host()).to_string();

    let mut cases: Vec<Case> = Vec::new();

    // Cut in the middle of the layer's bytes.
    let at = {
        let mut archive = tar::Archive::new(&full[..]);
        let e = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| {
                e.path()
                    .unwrap()
                    .ends_with(layer.strip_prefix("sha256:").unwrap())
            })
            .unwrap();
        usize::try_from(e.raw_file_position() + e.size() / 2).unwrap()
    };
    cases.push(Case {
        what: "truncated archive",
        body: full[..at].to_vec(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["truncated".into()],
        started: true,
    });
    // Cut at an entry boundary: the end-of-archive marker is missing.
    cases.push(Case {
        what: "archive without its end marker",
        body: full[..full.len() - 1024].to_vec(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["truncated".into()],
        started: true,
    });

    let mut l = good.clone();
    let bytes = l.files.get_mut(&blob_path(&layer)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    cases.push(Case {
        what: "a blob whose bytes do not match its name",
        body: l.tar(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec![
            layer.strip_prefix("sha256:").unwrap().into(),
            "digest".into(),
        ],
        started: true,
    });

    let mut l = good.clone();
    let mut m = l.manifest();
    m["layers"][0]["mediaType"] = "application/vnd.berth.test.unknown".into();
    l.set_manifest(&m);
    cases.push(Case {
        what: "unknown layer media type",
        body: l.tar(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["application/vnd.berth.test.unknown".into()],
        started: true,
    });

    let mut l = good.clone();
    l.files.remove(&blob_path(&layer));
    cases.push(Case {
        what: "a manifest naming a missing blob",
        body: l.tar(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec![layer.clone()],
        started: true,
    });

    // A config whose diff id does not match the layer: found only while unpacking,
    // after a snapshot was prepared for it.
    let mut l = good.clone();
    let mut cfg = l.json(&blob_path(&config));
    let wrong = sha256(b"not the layer");
    cfg["rootfs"]["diff_ids"][0] = wrong.clone().into();
    let (cfg_digest, cfg_size) = l.replace_blob(&config, serde_json::to_vec(&cfg).unwrap());
    let mut m = l.manifest();
    m["config"]["digest"] = cfg_digest.into();
    m["config"]["size"] = cfg_size.into();
    l.set_manifest(&m);
    cases.push(Case {
        what: "a layer that does not match its diff id",
        body: l.tar(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec![wrong],
        started: true,
    });

    let mut l = good.clone();
    l.files
        .insert("blobs/sha256/not-a-digest".into(), b"x".to_vec());
    cases.push(Case {
        what: "a blob not named by a digest",
        body: l.tar(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["not-a-digest".into()],
        started: true,
    });

    cases.push(Case {
        what: "garbage",
        body: noise(64 * 1024),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["not a tar archive".into()],
        started: true,
    });
    cases.push(Case {
        what: "empty body",
        body: Vec::new(),
        query: String::new(),
        status: 400,
        kind: "InvalidArgument",
        says: vec!["archive".into()],
        started: true,
    });
    for (what, query, status, kind, says) in [
        (
            "invalid name",
            "name=Bad..Name",
            400,
            "InvalidArgument",
            "Bad..Name",
        ),
        ("empty name", "name=", 400, "InvalidArgument", "name"),
        (
            "unknown namespace",
            "namespace=nope",
            404,
            "NotFound",
            "nope",
        ),
        (
            "invalid namespace",
            "namespace=a..b",
            400,
            "InvalidArgument",
            "a..b",
        ),
        (
            "malformed platform",
            "platform=linux",
            400,
            "InvalidArgument",
            "linux",
        ),
        (
            "empty platform",
            "platform=",
            400,
            "InvalidArgument",
            "platform",
        ),
        (
            "unknown parameter",
            "bogus=1",
            400,
            "InvalidArgument",
            "bogus",
        ),
    ] {
        cases.push(Case {
            what,
            body: full.clone(),
            query: query.into(),
            status,
            kind,
            says: vec![says.into()],
            started: false,
        });
    }
    cases.push(Case {
        what: "an index without the requested platform",
        body: multiarch,
        query: "platform=linux/s390x".into(),
        status: 404,
        kind: "NotFound",
        says: vec!["linux/s390x".into(), host, other],
        started: true,
    });

    let file = d.dir().join("bad.tar");
    for case in &cases {
        let what = case.what;
        let seq_before = berth_tests::last_seq(&c).await;
        std::fs::write(&file, &case.body).unwrap();
        let reply = import_raw(&c, &file, &case.query).await;
        let message = reply.error(what, case.status, case.kind);
        for s in &case.says {
            assert!(
                message.contains(s.as_str()),
                "{what}: {message:?} does not say {s:?}"
            );
        }
        assert!(
            !message.contains('\u{fffd}'),
            "{what}: unreadable message {message:?}"
        );
        eprintln!("{what}: {} {message}", case.status);

        // What the daemon journaled: a failed import whose lease is gone, or nothing.
        let records = journal(&c).await;
        let new: Vec<&str> = records
            .iter()
            .filter(|r| r.seq > seq_before)
            .map(|r| r.topic.as_str())
            .collect();
        if case.started {
            assert!(new.contains(&"image.import.started"), "{what}: {new:?}");
            assert!(new.contains(&"image.import.failed"), "{what}: {new:?}");
            assert_eq!(new.last(), Some(&"lease.deleted"), "{what}: {new:?}");
            assert!(!new.contains(&"image.stored"), "{what}: {new:?}");
            let failed = records
                .iter()
                .rfind(|r| r.topic == "image.import.failed")
                .unwrap();
            assert_eq!(failed.event["reason"].as_str(), Some(message.as_str()));
        } else {
            assert!(new.is_empty(), "{what}: {new:?}");
        }
        let created = records
            .iter()
            .filter(|r| r.topic == "lease.created")
            .count();
        let deleted = records
            .iter()
            .filter(|r| r.topic == "lease.deleted")
            .count();
        assert_eq!(created, deleted, "{what}: a lease is left");

        let now = storage_view(&d, "default").await;
        assert_eq!(now.images, baseline.images, "{what}: images changed");
        assert_eq!(
            now.snapshots, baseline.snapshots,
            "{what}: snapshots changed before any collection"
        );
        assert!(
            now.ingests.is_empty(),
            "{what}: ingests left: {:?}",
            now.ingests
        );
        gc(&c).await;
        assert_eq!(
            storage_view(&d, "default").await,
            baseline,
            "{what}: a collection does not restore the baseline"
        );
    }

    // The good archive still imports after all that.
    std::fs::write(&file, &full).unwrap();
    let r = import(&c, &file, "").await;
    assert_eq!(r.images[0].target.digest, bb.digest.to_string());
    storage_view(&d, "default").await.assert_consistent();
}
