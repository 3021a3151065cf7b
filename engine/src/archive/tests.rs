//! Import and export against temporary stores, with archives built here from small
//! in-memory images.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::*;
use crate::content::{IngestManager, LocalStore, Manager};
use crate::ErrorKind;

// ---- building blocks ----

fn new_store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("content")).unwrap();
    (dir, store)
}

/// One tar entry as the tests write it (names are written raw, so `./`, `..` and
/// absolute names can be tested).
enum E<'a> {
    File(&'a str, Vec<u8>),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Raw(&'a str, tar::EntryType),
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (name, data, kind, link): (&str, &[u8], _, Option<&str>) = match e {
            E::File(n, d) => (n, d, tar::EntryType::Regular, None),
            E::Dir(n) => (n, &[], tar::EntryType::Directory, None),
            E::Symlink(n, l) => (n, &[], tar::EntryType::Symlink, Some(l)),
            E::Raw(n, k) => (n, &[], *k, None),
        };
        let mut h = tar::Header::new_gnu();
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(kind);
        if name.len() > 100 {
            // A GNU long name (tar checks it: only plain relative names here).
            b.append_data(&mut h, name, data).unwrap();
            continue;
        }
        let slot = &mut h.as_old_mut().name;
        slot[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn files(entries: &[(&str, &[u8])]) -> Vec<u8> {
    tar_of(
        &entries
            .iter()
            .map(|(n, d)| E::File(n, d.to_vec()))
            .collect::<Vec<_>>(),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn digest(bytes: &[u8]) -> Digest {
    Digest::of_bytes(bytes)
}

fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes).as_str(), "size": bytes.len()})
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A small image: an uncompressed and a gzip layer, a config, an OCI manifest.
#[derive(Clone)]
struct Img {
    raw_layers: Vec<Vec<u8>>,
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl Img {
    fn new(arch: &str, seed: &str) -> Img {
        let l1 = files(&[("etc/hello", seed.as_bytes())]);
        let l2_raw = files(&[("bin/tool", format!("tool of {seed}").as_bytes())]);
        let l2 = gzip(&l2_raw);
        let config = to_json(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [digest(&l1).as_str(), digest(&l2_raw).as_str()]},
        }));
        let manifest = to_json(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": desc(media::OCI_CONFIG, &config),
            "layers": [desc(media::OCI_LAYER_TAR, &l1), desc(media::OCI_LAYER_GZIP, &l2)],
        }));
        Img {
            raw_layers: vec![l1.clone(), l2_raw],
            layers: vec![l1, l2],
            config,
            manifest,
        }
    }

    fn digest(&self) -> Digest {
        digest(&self.manifest)
    }

    fn target(&self) -> Target {
        Target {
            media_type: media::OCI_MANIFEST.into(),
            digest: self.digest(),
            size: self.manifest.len() as u64,
        }
    }

    /// Manifest, config, layers.
    fn blobs(&self) -> Vec<Vec<u8>> {
        let mut v = vec![self.manifest.clone(), self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

fn blob_path(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", digest(bytes).hex())
}

fn named(media_type: &str, bytes: &[u8], annotations: Value) -> Value {
    let mut d = desc(media_type, bytes);
    d["annotations"] = annotations;
    d
}

fn index_json(manifests: Vec<Value>) -> Vec<u8> {
    to_json(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests}))
}

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI layout archive of `index` and `blobs` (layout files first, then blobs).
fn oci_archive(index: &[u8], blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut entries = vec![
        E::File("oci-layout", LAYOUT.to_vec()),
        E::File("index.json", index.to_vec()),
    ];
    let paths: Vec<String> = blobs.iter().map(|b| blob_path(b)).collect();
    for (p, b) in paths.iter().zip(blobs) {
        entries.push(E::File(p, b.clone()));
    }
    tar_of(&entries)
}

fn opts(name: Option<&str>) -> ImportOptions {
    ImportOptions {
        name: name.map(|n| ImageName::parse(n).unwrap()),
        ingest_prefix: "import-1".into(),
    }
}

fn run(store: &LocalStore, bytes: &[u8], name: Option<&str>) -> (Result<Imported>, Vec<BlobEvent>) {
    let mut events = Vec::new();
    let r = import(bytes, store, opts(name), &mut |e| {
        events.push(e);
        Ok(())
    });
    (r, events)
}

fn ok(store: &LocalStore, bytes: &[u8], name: Option<&str>) -> (Imported, Vec<BlobEvent>) {
    let (r, events) = run(store, bytes, name);
    let imported = r.unwrap();
    check_protocol(&events);
    assert!(store.ingests().unwrap().is_empty());
    (imported, events)
}

/// Every Committed follows a Committing of the same blob.
fn check_protocol(events: &[BlobEvent]) {
    let mut announced = BTreeSet::new();
    for e in events {
        match e {
            BlobEvent::Committing { digest, .. } => {
                announced.insert(digest.clone());
            }
            BlobEvent::Committed { digest, .. } => {
                assert!(announced.contains(digest), "{digest} committed unannounced")
            }
        }
    }
}

fn listed(store: &LocalStore) -> BTreeSet<Digest> {
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.digest)
        .collect()
}

fn set(blobs: &[Vec<u8>]) -> BTreeSet<Digest> {
    blobs.iter().map(|b| digest(b)).collect()
}

fn name(n: &str) -> ImageName {
    ImageName::parse(n).unwrap()
}

/// A rejected import: InvalidArgument mentioning `needle`, no ingest left, no blob
/// beyond `may_remain` added.
fn rejected(
    store: &LocalStore,
    bytes: &[u8],
    name: Option<&str>,
    needle: &str,
    may_remain: &BTreeSet<Digest>,
) -> String {
    let before = listed(store);
    let (r, events) = run(store, bytes, name);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
    assert!(store.ingests().unwrap().is_empty(), "ingest left behind");
    check_protocol(&events);
    for d in listed(store).difference(&before) {
        assert!(
            may_remain.contains(d),
            "{d} committed by a failed import ({msg})"
        );
    }
    msg
}

// ---- import: OCI ----

#[test]
fn imports_an_oci_archive() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "one");
    let index = index_json(vec![named(
        media::OCI_MANIFEST,
        &img.manifest,
        json!({ANNOTATION_IMAGE_NAME: "berth.test/one:v1", media::ANNOTATION_REF_NAME: "v1"}),
    )]);
    // `./` prefixes and directory entries, as GNU tar writes them; blobs before
    // index.json.
    let paths: Vec<String> = img
        .blobs()
        .iter()
        .map(|b| format!("./{}", blob_path(b)))
        .collect();
    let mut entries = vec![E::Dir("./"), E::Dir("./blobs/"), E::Dir("./blobs/sha256/")];
    for (p, b) in paths.iter().zip(img.blobs()) {
        entries.push(E::File(p, b));
    }
    entries.push(E::File("./index.json", index));
    entries.push(E::File("./oci-layout", LAYOUT.to_vec()));
    let archive = tar_of(&entries);

    let (imported, events) = ok(&store, &archive, None);
    assert_eq!(
        imported.images,
        vec![(name("berth.test/one:v1"), img.target())]
    );
    assert_eq!(imported.manifests, vec![img.digest()]);
    assert_eq!(
        imported.blobs.iter().cloned().collect::<BTreeSet<_>>(),
        set(&img.blobs())
    );
    assert_eq!(listed(&store), set(&img.blobs()));
    for d in &imported.blobs {
        store.verify(d).unwrap();
    }
    assert!(events
        .iter()
        .all(|e| !matches!(e, BlobEvent::Committed { created: false, .. })));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, BlobEvent::Committed { .. }))
            .count(),
        4
    );

    // Again into the same store: every blob is there already.
    let mut o = opts(None);
    o.ingest_prefix = "import-2".into();
    let mut events = Vec::new();
    let again = import(&archive[..], &store, o, &mut |e| {
        events.push(e);
        Ok(())
    })
    .unwrap();
    assert_eq!(again.images, imported.images);
    check_protocol(&events);
    assert!(events
        .iter()
        .all(|e| !matches!(e, BlobEvent::Committed { created: true, .. })));
}

#[test]
fn imports_an_index_missing_a_platform() {
    let (_d, store) = new_store();
    let amd = Img::new("amd64", "multi");
    let arm = Img::new("arm64", "multi-arm");
    let mut m_amd = desc(media::OCI_MANIFEST, &amd.manifest);
    m_amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut m_arm = desc(media::OCI_MANIFEST, &arm.manifest);
    m_arm["platform"] = json!({"os": "linux", "architecture": "arm64"});
    let index = to_json(
        &json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [m_amd, m_arm]}),
    );
    let top = index_json(vec![named(
        media::OCI_INDEX,
        &index,
        json!({media::ANNOTATION_REF_NAME: "berth.test/multi:latest"}),
    )]);
    let mut blobs = vec![index.clone()];
    blobs.extend(amd.blobs());
    let (imported, _) = ok(&store, &oci_archive(&top, &blobs), None);
    assert_eq!(
        imported.images,
        vec![(
            name("berth.test/multi:latest"),
            Target {
                media_type: media::OCI_INDEX.into(),
                digest: digest(&index),
                size: index.len() as u64
            }
        )]
    );
    assert_eq!(imported.manifests, vec![amd.digest()]);

    // Export holds the index and the platform present, nothing of the other.
    let mut out = Vec::new();
    export(&store, &imported.images, &mut out).unwrap();
    let (_d2, fresh) = new_store();
    let (again, _) = ok(&fresh, &out, None);
    assert_eq!(again.images, imported.images);
    assert_eq!(listed(&fresh), set(&blobs));

    // An index none of whose images is present is refused.
    let (_d3, other) = new_store();
    let msg = rejected(
        &other,
        &oci_archive(&top, std::slice::from_ref(&index)),
        None,
        "holds none",
        &set(std::slice::from_ref(&index)),
    );
    assert!(msg.contains(&digest(&index).to_string()), "{msg}");
}

// ---- import: docker ----

/// A classic `docker save` archive of `images` (tags each), layers uncompressed in
/// `<diff-id hex>/layer.tar`; a layer met again is a symlink to the first copy, as
/// docker writes it.
fn docker_archive(images: &[(&Img, Vec<&str>)]) -> Vec<u8> {
    let mut owned: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    let mut manifest = Vec::new();
    let mut seen: Vec<Digest> = Vec::new();
    for (k, (img, tags)) in images.iter().enumerate() {
        let mut layers = Vec::new();
        for (j, raw) in img.raw_layers.iter().enumerate() {
            let d = digest(raw);
            if seen.contains(&d) {
                // docker: a new directory whose layer.tar links to the first.
                let dir = digest(format!("{k}-{j}").as_bytes()).hex().to_string();
                owned.push((format!("{dir}/"), Vec::new(), None));
                owned.push((
                    format!("{dir}/layer.tar"),
                    Vec::new(),
                    Some(format!("../{}/layer.tar", d.hex())),
                ));
                layers.push(format!("{dir}/layer.tar"));
                continue;
            }
            seen.push(d.clone());
            owned.push((format!("{}/", d.hex()), Vec::new(), None));
            owned.push((format!("{}/VERSION", d.hex()), b"1.0".to_vec(), None));
            owned.push((format!("{}/json", d.hex()), b"{}".to_vec(), None));
            owned.push((format!("{}/layer.tar", d.hex()), raw.clone(), None));
            layers.push(format!("{}/layer.tar", d.hex()));
        }
        let config = format!("{}.json", digest(&img.config).hex());
        owned.push((config.clone(), img.config.clone(), None));
        manifest.push(json!({"Config": config, "RepoTags": tags, "Layers": layers}));
    }
    owned.push((
        "manifest.json".into(),
        to_json(&Value::Array(manifest)),
        None,
    ));
    owned.push(("repositories".into(), b"{}".to_vec(), None));
    let entries: Vec<E<'_>> = owned
        .iter()
        .map(|(p, d, l)| match l {
            Some(l) => E::Symlink(p, l),
            None if p.ends_with('/') => E::Dir(p),
            None => E::File(p, d.clone()),
        })
        .collect();
    tar_of(&entries)
}

/// The manifest berth synthesizes for a docker image (all layers plain tar), with
/// its fields in the order berth writes them.
fn synthesized(img: &Img) -> Vec<u8> {
    let layers: Vec<String> = img
        .raw_layers
        .iter()
        .map(|l| desc_str(media::OCI_LAYER_TAR, l))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
        media::OCI_MANIFEST,
        desc_str(media::OCI_CONFIG, &img.config),
        layers.join(",")
    )
    .into_bytes()
}

fn desc_str(media_type: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
        digest(bytes),
        bytes.len()
    )
}

#[test]
fn imports_a_docker_archive() {
    let (_d, store) = new_store();
    let a = Img::new("amd64", "docker-a");
    // b shares a's first layer (a symlink in the archive).
    let mut b = Img::new("amd64", "docker-b");
    b.raw_layers[0] = a.raw_layers[0].clone();
    b.config = to_json(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&b.raw_layers[0]).as_str(), digest(&b.raw_layers[1]).as_str()]},
    }));
    let archive = docker_archive(&[
        (&a, vec!["berth.test/a:latest", "alias:1"]),
        (&b, vec!["berth.test/b"]),
    ]);
    let (imported, events) = ok(&store, &archive, None);

    let (ma, mb) = (synthesized(&a), synthesized(&b));
    let t = |m: &[u8]| Target {
        media_type: media::OCI_MANIFEST.into(),
        digest: digest(m),
        size: m.len() as u64,
    };
    assert_eq!(
        imported.images,
        vec![
            (name("berth.test/a:latest"), t(&ma)),
            (name("alias:1"), t(&ma)),
            (name("berth.test/b:latest"), t(&mb)),
        ]
    );
    assert_eq!(imported.manifests, vec![digest(&ma), digest(&mb)]);
    let mut want = vec![ma.clone(), mb.clone(), a.config.clone(), b.config.clone()];
    want.extend(a.raw_layers.iter().cloned());
    want.push(b.raw_layers[1].clone());
    assert_eq!(listed(&store), set(&want));
    assert_eq!(
        imported.blobs.iter().cloned().collect::<BTreeSet<_>>(),
        set(&want)
    );
    // The synthesized manifests were reported too.
    assert!(events
        .iter()
        .any(|e| matches!(e, BlobEvent::Committed { digest: d, .. } if *d == digest(&ma))));
    // And they parse as runnable manifests.
    let bytes = read_document(&store, &digest(&ma)).unwrap();
    assert!(matches!(
        crate::image::parse(Some(media::OCI_MANIFEST), &bytes).unwrap(),
        crate::image::Parsed::Manifest(_)
    ));

    // A name replaces the tags, for a single image only.
    let (_d2, s2) = new_store();
    let single = docker_archive(&[(&a, vec![])]);
    rejected(
        &s2,
        &single,
        None,
        "?name=",
        &set(&[
            a.config.clone(),
            a.raw_layers[0].clone(),
            a.raw_layers[1].clone(),
        ]),
    );
    let (imported, _) = ok(&s2, &single, Some("berth.test/named:v2"));
    assert_eq!(imported.images, vec![(name("berth.test/named:v2"), t(&ma))]);
    let (_d3, s3) = new_store();
    rejected(
        &s3,
        &archive,
        Some("berth.test/named:v2"),
        "holds 2 images",
        &listed(&store),
    );
}

#[test]
fn imports_a_docker25_archive_by_its_layout() {
    // Docker 25+: an OCI layout (index.json without names here) plus manifest.json.
    let (_d, store) = new_store();
    let img = Img::new("amd64", "d25");
    let index = index_json(vec![desc(media::OCI_MANIFEST, &img.manifest)]);
    let manifest_json = to_json(&json!([{
        "Config": blob_path(&img.config),
        "RepoTags": ["berth.test/d25:latest"],
        "Layers": img.layers.iter().map(|l| blob_path(l)).collect::<Vec<_>>(),
    }]));
    let mut entries = vec![E::Dir("blobs/"), E::Dir("blobs/sha256/")];
    let paths: Vec<String> = img.blobs().iter().map(|b| blob_path(b)).collect();
    for (p, b) in paths.iter().zip(img.blobs()) {
        entries.push(E::File(p, b));
    }
    entries.push(E::File("index.json", index));
    entries.push(E::File("manifest.json", manifest_json));
    entries.push(E::File("oci-layout", LAYOUT.to_vec()));
    entries.push(E::File("repositories", b"{}".to_vec()));
    let (imported, _) = ok(&store, &tar_of(&entries), None);
    assert_eq!(
        imported.images,
        vec![(name("berth.test/d25:latest"), img.target())]
    );
    assert_eq!(listed(&store), set(&img.blobs()));
}

// ---- naming ----

#[test]
fn naming_rules() {
    let a = Img::new("amd64", "name-a");
    let b = Img::new("amd64", "name-b");
    let tag_only = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &a.manifest,
            json!({media::ANNOTATION_REF_NAME: "latest"}),
        )]),
        &a.blobs(),
    );
    let (_d, s) = new_store();
    let msg = rejected(&s, &tag_only, None, "?name=", &set(&a.blobs()));
    assert!(msg.contains("\"latest\""), "{msg}");
    let (imported, _) = ok(&s, &tag_only, Some("berth.test/named:v2"));
    assert_eq!(
        imported.images,
        vec![(name("berth.test/named:v2"), a.target())]
    );

    // No annotation at all.
    let unnamed = oci_archive(
        &index_json(vec![desc(media::OCI_MANIFEST, &a.manifest)]),
        &a.blobs(),
    );
    rejected(&s, &unnamed, None, "has no image name", &BTreeSet::new());

    // Two images: names from annotations; a given name is refused.
    let mut blobs = a.blobs();
    blobs.extend(b.blobs());
    let two = oci_archive(
        &index_json(vec![
            named(
                media::OCI_MANIFEST,
                &a.manifest,
                json!({ANNOTATION_IMAGE_NAME: "berth.test/a:1"}),
            ),
            named(
                media::OCI_MANIFEST,
                &b.manifest,
                json!({media::ANNOTATION_REF_NAME: "localhost:5000/b"}),
            ),
            // Same image under a second name.
            named(
                media::OCI_MANIFEST,
                &a.manifest,
                json!({ANNOTATION_IMAGE_NAME: "berth.test/a:2"}),
            ),
        ]),
        &blobs,
    );
    let (imported, _) = ok(&s, &two, None);
    assert_eq!(
        imported.images,
        vec![
            (name("berth.test/a:1"), a.target()),
            (name("localhost:5000/b:latest"), b.target()),
            (name("berth.test/a:2"), a.target()),
        ]
    );
    assert_eq!(imported.manifests, vec![a.digest(), b.digest()]);
    rejected(&s, &two, Some("x:1"), "holds 2 images", &BTreeSet::new());

    // One name, two images.
    let clash = oci_archive(
        &index_json(vec![
            named(
                media::OCI_MANIFEST,
                &a.manifest,
                json!({ANNOTATION_IMAGE_NAME: "berth.test/x:1"}),
            ),
            named(
                media::OCI_MANIFEST,
                &b.manifest,
                json!({ANNOTATION_IMAGE_NAME: "berth.test/x:1"}),
            ),
        ]),
        &blobs,
    );
    rejected(&s, &clash, None, "two images", &BTreeSet::new());

    // A name that does not parse.
    let bad = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &a.manifest,
            json!({ANNOTATION_IMAGE_NAME: "Bad Name"}),
        )]),
        &a.blobs(),
    );
    rejected(&s, &bad, None, "invalid image name", &BTreeSet::new());
}

// ---- export ----

fn mixed_store() -> (tempfile::TempDir, LocalStore, Vec<(ImageName, Target)>) {
    let (d, store) = new_store();
    let a = Img::new("amd64", "exp-a");
    let b = Img::new("amd64", "exp-b");
    let mut blobs = a.blobs();
    blobs.extend(b.blobs());
    let oci = oci_archive(
        &index_json(vec![
            named(
                media::OCI_MANIFEST,
                &a.manifest,
                json!({ANNOTATION_IMAGE_NAME: "berth.test/a:1"}),
            ),
            named(
                media::OCI_MANIFEST,
                &b.manifest,
                json!({ANNOTATION_IMAGE_NAME: "registry.example.com/team/b:2"}),
            ),
        ]),
        &blobs,
    );
    let (mut images, _) = ok(&store, &oci, None);
    let c = Img::new("amd64", "exp-c");
    let mut o = opts(None);
    o.ingest_prefix = "import-docker".into();
    let docker = import(
        &docker_archive(&[(&c, vec!["berth.test/c:3"])])[..],
        &store,
        o,
        &mut |_| Ok(()),
    )
    .unwrap();
    images.images.extend(docker.images);
    (d, store, images.images)
}

#[test]
fn export_round_trips() {
    let (_d, store, images) = mixed_store();
    let mut first = Vec::new();
    export(&store, &images, &mut first).unwrap();
    let mut second = Vec::new();
    let reversed: Vec<_> = images.iter().rev().cloned().collect();
    export(&store, &reversed, &mut second).unwrap();
    assert_eq!(first, second, "export is deterministic");

    // Deterministic headers and layout.
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&first[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        let dir = h.entry_type() == tar::EntryType::Directory;
        assert_eq!(h.mode().unwrap(), if dir { 0o755 } else { 0o644 });
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(
        &names[..4],
        &["oci-layout", "index.json", "blobs/", "blobs/sha256/"]
    );
    let blob_names = &names[4..];
    assert!(
        blob_names.windows(2).all(|w| w[0] < w[1]),
        "sorted, each once"
    );

    // Into a fresh store: same names, targets and blobs; exported again: same bytes.
    let (_d2, fresh) = new_store();
    let (again, _) = ok(&fresh, &first, None);
    let mut want = images.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got = again.images.clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    assert_eq!(listed(&fresh), listed(&store));
    let mut third = Vec::new();
    export(&fresh, &again.images, &mut third).unwrap();
    assert_eq!(first, third, "export → import → export is byte-identical");

    // index.json carries both annotations.
    let mut ar = tar::Archive::new(&first[..]);
    let mut index = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            std::io::Read::read_to_end(&mut e, &mut index).unwrap();
        }
    }
    let index: Value = serde_json::from_slice(&index).unwrap();
    let first_entry = &index["manifests"][0]["annotations"];
    assert_eq!(first_entry[ANNOTATION_IMAGE_NAME], "berth.test/a:1");
    assert_eq!(first_entry[media::ANNOTATION_REF_NAME], "1");

    // A subset exports only what it reaches.
    let mut one = Vec::new();
    export(&store, &images[..1], &mut one).unwrap();
    let (_d3, s3) = new_store();
    let (imported, _) = ok(&s3, &one, None);
    assert_eq!(imported.images, images[..1].to_vec());
    assert_eq!(listed(&s3).len(), 4);
}

#[test]
fn export_refuses_a_missing_layer() {
    let (_d, store) = new_store();
    let a = Img::new("amd64", "exp-missing");
    let (imported, _) = ok(
        &store,
        &oci_archive(
            &index_json(vec![named(
                media::OCI_MANIFEST,
                &a.manifest,
                json!({ANNOTATION_IMAGE_NAME: "x:1"}),
            )]),
            &a.blobs(),
        ),
        None,
    );
    store.delete(&digest(&a.layers[1])).unwrap();
    let e = export(&store, &imported.images, &mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// A store whose blob `fail` cannot be opened (as if removed after the export
/// looked it up).
struct Flaky<'a> {
    inner: &'a LocalStore,
    fail: Digest,
}

impl Provider for Flaky<'_> {
    fn info(&self, digest: &Digest) -> Result<crate::content::Info> {
        self.inner.info(digest)
    }

    fn open(&self, digest: &Digest) -> Result<crate::content::Blob> {
        if *digest == self.fail {
            return Err(EngineError::NotFound {
                kind: "blob",
                id: digest.to_string(),
            });
        }
        self.inner.open(digest)
    }
}

#[test]
fn a_failed_export_leaves_a_truncated_archive() {
    let (_d, store, images) = mixed_store();
    let mut whole = Vec::new();
    export(&store, &images, &mut whole).unwrap();
    // The last layer written (documents start with '{') cannot be opened.
    let last = listed(&store)
        .into_iter()
        .rev()
        .find(|d| read_document(&store, d).map_or(true, |b| !b.starts_with(b"{")))
        .unwrap();
    let flaky = Flaky {
        inner: &store,
        fail: last,
    };
    let mut cut = Vec::new();
    let e = export(&flaky, &images, &mut cut).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(!cut.is_empty() && cut.len() < whole.len());
    assert!(
        whole.starts_with(&cut),
        "the output stops where the failure happened"
    );
    let (_d2, fresh) = new_store();
    rejected(&fresh, &cut, None, "end-of-archive marker", &listed(&store));
}

#[test]
fn tag_of_names() {
    assert_eq!(tag_of(&name("a/b:v1")), Some("v1"));
    assert_eq!(tag_of(&name("localhost:5000/b")), Some("latest"));
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(tag_of(&name(&format!("a@{d}"))), None);
    assert_eq!(tag_of(&name(&format!("a:v2@{d}"))), Some("v2"));
}

// ---- bad input ----

fn good_oci(img: &Img) -> Vec<u8> {
    oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &img.manifest,
            json!({ANNOTATION_IMAGE_NAME: "berth.test/bad:1"}),
        )]),
        &img.blobs(),
    )
}

#[test]
fn truncated_archives_are_refused() {
    let (_d, store) = new_store();
    let mut img = Img::new("amd64", "trunc");
    // A big last layer, so the cut falls inside its data.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let raw = files(&[("big", &big)]);
    img.raw_layers[1] = raw.clone();
    img.layers[1] = raw.clone();
    img.config = to_json(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&img.layers[0]).as_str(), digest(&raw).as_str()]},
    }));
    img.manifest = to_json(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &img.config),
        "layers": [desc(media::OCI_LAYER_TAR, &img.layers[0]), desc(media::OCI_LAYER_TAR, &raw)],
    }));
    let archive = good_oci(&img);
    let earlier = set(&img.blobs()[..3]);

    // Inside the big blob.
    let at = archive
        .windows(64)
        .position(|w| w == &raw[1000..1064])
        .unwrap();
    let msg = rejected(
        &store,
        &archive[..at],
        None,
        "truncated or corrupt",
        &earlier,
    );
    assert!(msg.contains(&blob_path(&raw)), "{msg}");
    assert!(!listed(&store).contains(&digest(&raw)));

    // Inside a header.
    let (_d2, s2) = new_store();
    rejected(
        &s2,
        &archive[..512 + 100],
        None,
        "truncated or corrupt",
        &BTreeSet::new(),
    );

    // At an entry boundary: no end-of-archive marker.
    let (_d3, s3) = new_store();
    rejected(
        &s3,
        &archive[..archive.len() - 1024],
        None,
        "end-of-archive marker",
        &set(&img.blobs()),
    );

    // Empty input, and bytes that are not a tar.
    rejected(&s3, b"", None, "truncated or corrupt", &BTreeSet::new());
    let msg = rejected(
        &s3,
        &[7u8; 2048],
        None,
        "truncated or corrupt",
        &BTreeSet::new(),
    );
    // Said in words, not by quoting the bytes.
    assert!(msg.contains("not a tar archive"), "{msg}");
    assert!(!msg.chars().any(char::is_control), "{msg:?}");
}

#[test]
fn a_wrong_digest_is_refused() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "wrong");
    let liar = img.layers[0].clone();
    let content = b"not what the name says".to_vec();
    let path = blob_path(&liar);
    let archive = tar_of(&[
        E::File("oci-layout", LAYOUT.to_vec()),
        E::File(&path, content.clone()),
    ]);
    let msg = rejected(&store, &archive, None, &path, &BTreeSet::new());
    assert!(msg.contains("does not match its digest"), "{msg}");
    assert!(store.list().unwrap().is_empty());
    // Not even the content under its own digest.
    assert!(!listed(&store).contains(&digest(&content)));
}

#[test]
fn bad_manifests_are_refused() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "badman");

    // An unknown layer media type.
    let manifest = to_json(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &img.config),
        "layers": [desc("application/x-unknown-layer", &img.layers[0]), desc(media::OCI_LAYER_GZIP, &img.layers[1])],
    }));
    let mut blobs = img.blobs();
    blobs[0] = manifest.clone();
    let archive = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &manifest,
            json!({ANNOTATION_IMAGE_NAME: "x:1"}),
        )]),
        &blobs,
    );
    rejected(
        &store,
        &archive,
        None,
        "application/x-unknown-layer",
        &set(&blobs),
    );

    // An unknown media type in index.json.
    let archive = oci_archive(
        &index_json(vec![named(
            "application/x-thing",
            &img.manifest,
            json!({ANNOTATION_IMAGE_NAME: "x:1"}),
        )]),
        &img.blobs(),
    );
    rejected(
        &store,
        &archive,
        None,
        "application/x-thing",
        &set(&img.blobs()),
    );

    // A manifest pointing at a missing blob.
    let (_d2, s2) = new_store();
    let without = &img.blobs()[..3];
    let archive = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &img.manifest,
            json!({ANNOTATION_IMAGE_NAME: "x:1"}),
        )]),
        without,
    );
    let msg = rejected(&s2, &archive, None, "points at missing blob", &set(without));
    assert!(
        msg.contains(&digest(&img.layers[1]).to_string())
            && msg.contains(&img.digest().to_string()),
        "{msg}"
    );

    // index.json naming a missing manifest.
    let archive = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &img.manifest,
            json!({ANNOTATION_IMAGE_NAME: "x:1"}),
        )]),
        &img.blobs()[1..],
    );
    let (_d3, s3) = new_store();
    rejected(
        &s3,
        &archive,
        None,
        "points at missing blob",
        &set(&img.blobs()),
    );

    // A config that does not match the manifest.
    let config = to_json(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    );
    let manifest = to_json(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &config),
        "layers": [desc(media::OCI_LAYER_TAR, &img.layers[0])],
    }));
    let blobs = vec![manifest.clone(), config, img.layers[0].clone()];
    let archive = oci_archive(
        &index_json(vec![named(
            media::OCI_MANIFEST,
            &manifest,
            json!({ANNOTATION_IMAGE_NAME: "x:1"}),
        )]),
        &blobs,
    );
    rejected(&s2, &archive, None, "diff ids", &set(&blobs));

    // A size that differs from the blob's.
    let mut d = desc(media::OCI_MANIFEST, &img.manifest);
    d["size"] = json!(img.manifest.len() + 1);
    d["annotations"] = json!({ANNOTATION_IMAGE_NAME: "x:1"});
    rejected(
        &s2,
        &oci_archive(&index_json(vec![d]), &img.blobs()),
        None,
        "bytes",
        &set(&img.blobs()),
    );
}

#[test]
fn bad_layouts_are_refused() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "layout");
    let blobs: Vec<(String, Vec<u8>)> = img
        .blobs()
        .iter()
        .map(|b| (blob_path(b), b.clone()))
        .collect();
    let with = |extra: Vec<E<'static>>, index: bool| {
        let mut entries = vec![E::File("oci-layout", LAYOUT.to_vec())];
        for (p, b) in &blobs {
            entries.push(E::File(p, b.clone()));
        }
        if index {
            entries.push(E::File(
                "index.json",
                index_json(vec![named(
                    media::OCI_MANIFEST,
                    &img.manifest,
                    json!({ANNOTATION_IMAGE_NAME: "x:1"}),
                )]),
            ));
        }
        entries.extend(extra);
        tar_of(&entries)
    };
    let all = set(&img.blobs());

    rejected(
        &store,
        &with(vec![], false),
        None,
        "index.json is missing",
        &all,
    );
    rejected(
        &store,
        &files(&[("hello", b"x")]),
        None,
        "unexpected archive entry",
        &BTreeSet::new(),
    );
    rejected(
        &store,
        &files(&[("repositories", b"{}")]),
        None,
        "neither index.json",
        &BTreeSet::new(),
    );

    let sha512 = format!("blobs/sha512/{}", "ab".repeat(64));
    let e = tar_of(&[E::File(&sha512, b"x".to_vec())]);
    rejected(
        &store,
        &e,
        None,
        "\"sha512\" is not supported",
        &BTreeSet::new(),
    );
    let e = tar_of(&[E::File("blobs/sha256/abc", b"x".to_vec())]);
    rejected(&store, &e, None, "not a sha256 digest", &BTreeSet::new());

    for (path, needle) in [
        ("../evil", "'..'"),
        ("blobs/../../evil", "'..'"),
        ("/etc/passwd", "absolute"),
        ("etc/passwd", "unexpected archive entry"),
        ("a/b/c/layer.tar", "unexpected archive entry"),
    ] {
        let (_d, s) = new_store();
        rejected(
            &s,
            &with(vec![E::File(path, b"x".to_vec())], true),
            None,
            needle,
            &all,
        );
    }
    rejected(
        &store,
        &with(vec![E::Symlink("index2.json", "/etc/passwd")], true),
        None,
        "is a link",
        &all,
    );
    rejected(
        &store,
        &with(vec![E::Symlink("x/layer.tar", "../../../etc/passwd")], true),
        None,
        "outside",
        &all,
    );
    rejected(
        &store,
        &with(vec![E::Raw("fifo", tar::EntryType::Fifo)], true),
        None,
        "has type",
        &all,
    );
    rejected(
        &store,
        &with(vec![E::Dir("blobs/sha256/deep/")], true),
        None,
        "unexpected archive entry",
        &all,
    );

    let old = tar_of(&[E::File(
        "oci-layout",
        br#"{"imageLayoutVersion":"2.0.0"}"#.to_vec(),
    )]);
    rejected(
        &store,
        &old,
        None,
        "imageLayoutVersion \"2.0.0\"",
        &BTreeSet::new(),
    );
    let twice = with(vec![E::File("index.json", b"{}".to_vec())], true);
    rejected(&store, &twice, None, "more than one index.json", &all);
}

#[test]
fn bad_docker_archives_are_refused() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "docker-bad");
    let config_path = format!("{}.json", digest(&img.config).hex());
    let layer_path = format!("{}/layer.tar", digest(&img.raw_layers[0]).hex());
    let manifest = to_json(
        &json!([{"Config": config_path, "RepoTags": ["x:1"], "Layers": [layer_path, "missing/layer.tar"]}]),
    );
    let archive = tar_of(&[
        E::File(&config_path, img.config.clone()),
        E::File(&layer_path, img.raw_layers[0].clone()),
        E::File("manifest.json", manifest),
    ]);
    let may = set(&[img.config.clone(), img.raw_layers[0].clone()]);
    rejected(
        &store,
        &archive,
        None,
        "points at missing file \"missing/layer.tar\"",
        &may,
    );

    // A layer whose content is not the config's diff id.
    let other = files(&[("other", b"other")]);
    let manifest = to_json(
        &json!([{"Config": config_path, "RepoTags": ["x:1"], "Layers": [layer_path, "l2/layer.tar"]}]),
    );
    let archive = tar_of(&[
        E::File(&config_path, img.config.clone()),
        E::File(&layer_path, img.raw_layers[0].clone()),
        E::File("l2/layer.tar", other.clone()),
        E::File("manifest.json", manifest),
    ]);
    let mut may2 = may.clone();
    may2.insert(digest(&other));
    rejected(&store, &archive, None, "diff id", &may2);

    rejected(
        &store,
        &files(&[("manifest.json", b"{\"not\": \"a list\"}")]),
        None,
        "manifest.json is not valid",
        &BTreeSet::new(),
    );
    rejected(
        &store,
        &files(&[("manifest.json", b"[]")]),
        None,
        "lists no images",
        &BTreeSet::new(),
    );
}

#[test]
fn a_failing_callback_stops_the_import() {
    let (_d, store) = new_store();
    let img = Img::new("amd64", "callback");
    let archive = good_oci(&img);
    let mut calls = 0;
    let e = import(&archive[..], &store, opts(None), &mut |ev| {
        if matches!(ev, BlobEvent::Committing { .. }) {
            calls += 1;
            if calls == 2 {
                return Err(EngineError::Unavailable("lease store is down".into()));
            }
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e, EngineError::Unavailable("lease store is down".into()));
    assert!(store.ingests().unwrap().is_empty());
    assert_eq!(listed(&store).len(), 1);

    // Failing at the commit of a blob whose digest is learnt while writing (docker).
    let (_d2, s2) = new_store();
    let docker = docker_archive(&[(&img, vec!["x:1"])]);
    let e = import(&docker[..], &s2, opts(None), &mut |_| {
        Err(EngineError::Internal("no".into()))
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(s2.ingests().unwrap().is_empty());
    assert!(s2.list().unwrap().is_empty());
}

// ---- third-party tools ----

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: {name} is not installed; skipping its interoperability test");
    }
    found
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tars a directory (as a user would, `tar -C dir -cf - .`).
fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn imports_what_skopeo_writes_and_skopeo_reads_exports() {
    if !tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = Img::new("amd64", "skopeo");
    let input = tmp.path().join("in.tar");
    std::fs::write(&input, good_oci(&img)).unwrap();
    let skopeo = |args: &[&str]| {
        let mut c = Command::new("skopeo");
        c.arg("--insecure-policy")
            .args(args)
            .env("TMPDIR", tmp.path());
        sh(&mut c);
    };
    let manifest_of = |store: &LocalStore, target: &Target| {
        let bytes = read_document(store, &target.digest).unwrap();
        match crate::image::parse(Some(&target.media_type), &bytes).unwrap() {
            crate::image::Parsed::Manifest(m) => (bytes, m),
            crate::image::Parsed::Index(_) => panic!("not a manifest"),
        }
    };

    // An OCI archive written by skopeo (it re-compresses the layers, so the manifest
    // is its own), named by a full ref.name.
    let out = tmp.path().join("out.tar");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", input.display()),
        &format!("oci-archive:{}:berth.test/sk:v2", out.display()),
    ]);
    let (_d, store) = new_store();
    let (imported, _) = ok(&store, &std::fs::read(&out).unwrap(), None);
    assert_eq!(imported.images.len(), 1);
    let (sk_name, sk_target) = imported.images[0].clone();
    assert_eq!(sk_name, name("berth.test/sk:v2"));
    assert_eq!(imported.manifests, vec![sk_target.digest.clone()]);
    let (sk_manifest, m) = manifest_of(&store, &sk_target);
    assert_eq!(m.config().digest, digest(&img.config), "the config is kept");
    assert_eq!(m.layers().len(), 2);

    // A docker archive written by containers/image (`<hex>.tar` layers, linked
    // `<id>/layer.tar`).
    let docker = tmp.path().join("docker.tar");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", input.display()),
        &format!("docker-archive:{}:berth.test/sk:v3", docker.display()),
    ]);
    let (_d2, s2) = new_store();
    let (imported, _) = ok(&s2, &std::fs::read(&docker).unwrap(), None);
    assert_eq!(imported.images.len(), 1);
    assert_eq!(imported.images[0].0, name("berth.test/sk:v3"));
    let (_, m) = manifest_of(&s2, &imported.images[0].1);
    let layers: Vec<Digest> = m.layers().iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        layers,
        img.raw_layers.iter().map(|l| digest(l)).collect::<Vec<_>>(),
        "layers stored uncompressed, as docker-archive holds them"
    );

    // berth's export, read back by skopeo: the manifest is the same, byte for byte.
    let exported = tmp.path().join("export.tar");
    let mut bytes = Vec::new();
    export(&store, &[(sk_name.clone(), sk_target.clone())], &mut bytes).unwrap();
    std::fs::write(&exported, &bytes).unwrap();
    let inspect = Command::new("skopeo")
        .args(["--insecure-policy", "inspect", "--raw"])
        .arg(format!("oci-archive:{}:v2", exported.display()))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(inspect.stdout, sk_manifest);
    let copied = tmp.path().join("copied");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}:v2", exported.display()),
        &format!("oci:{}:again", copied.display()),
    ]);
    let (_d3, s3) = new_store();
    let (again, _) = ok(&s3, &tar_dir(&copied), Some("berth.test/sk:again"));
    let (_, m) = manifest_of(&s3, &again.images[0].1);
    assert_eq!(m.config().digest, digest(&img.config));
}

#[test]
fn imports_what_umoci_writes() {
    if !tool("umoci") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let image = format!("{}:edge", layout.display());
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello"), b"hello from umoci\n").unwrap();
    let umoci = |args: &[&str]| {
        let mut c = Command::new("umoci");
        c.arg(args[0]);
        if !nix::unistd::geteuid().is_root() {
            c.arg("--rootless");
        }
        c.args(&args[1..]);
        sh(&mut c);
    };
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    sh(Command::new("umoci").args(["new", "--image", &image]));
    umoci(&[
        "insert",
        "--image",
        &image,
        &src.join("hello").display().to_string(),
        "/hello",
    ]);
    sh(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "sh"]));
    sh(Command::new("umoci").args(["gc", "--layout"]).arg(&layout));

    let archive = tar_dir(&layout);
    let (_d, store) = new_store();
    // umoci names the image by a bare tag.
    rejected(
        &store,
        &archive,
        None,
        "named only by the tag \"edge\"",
        &listed_after(&archive),
    );
    let (imported, _) = ok(&store, &archive, Some("berth.test/umoci:edge"));
    assert_eq!(imported.images.len(), 1);
    assert_eq!(imported.images[0].0, name("berth.test/umoci:edge"));
    assert_eq!(imported.manifests.len(), 1);

    // Round trip through export.
    let mut out = Vec::new();
    export(&store, &imported.images, &mut out).unwrap();
    let (_d2, s2) = new_store();
    let (again, _) = ok(&s2, &out, None);
    assert_eq!(again.images, imported.images);
}

/// Every blob an OCI layout archive holds.
fn listed_after(archive: &[u8]) -> BTreeSet<Digest> {
    let (_d, s) = new_store();
    let _ = run(&s, archive, None);
    listed(&s)
}
