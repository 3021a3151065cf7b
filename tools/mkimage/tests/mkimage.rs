//! The test images: determinism, validity for berth's own parser and for skopeo/umoci,
//! and the `layers` image's final filesystem.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_engine::ids::Digest;
use berth_engine::image::{self, media, Config, Parsed, Platform};
use berth_mkimage::contents::{expected_layers_view, Expected, EXACT_DIRS};
use berth_mkimage::{assemble, build, Format, ImageKind, Options};

const KINDS: [ImageKind; 3] = [ImageKind::Busybox, ImageKind::Layers, ImageKind::Multiarch];
const FORMATS: [Format; 3] = [Format::OciDir, Format::OciArchive, Format::DockerArchive];

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Every file under `root` (relative path → bytes); directories as empty entries.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, Some(std::fs::read(e.path()).unwrap()));
            }
        }
    }
    if root.is_dir() {
        walk(root, root, &mut out);
    } else {
        out.insert(String::new(), Some(std::fs::read(root).unwrap()));
    }
    out
}

fn out_path(dir: &Path, kind: ImageKind, format: Format) -> PathBuf {
    dir.join(format!("{kind:?}-{format:?}"))
}

#[test]
fn two_builds_are_byte_identical() {
    let (a, b) = (tmp(), tmp());
    for kind in KINDS {
        for format in FORMATS {
            let name = kind.default_name();
            let pa = out_path(a.path(), kind, format);
            let pb = out_path(b.path(), kind, format);
            let ra = build(kind, &pa, format, name);
            let rb = build(kind, &pb, format, name);
            if kind == ImageKind::Multiarch && format == Format::DockerArchive {
                assert!(ra.is_err() && rb.is_err());
                continue;
            }
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert_eq!(ra.digest, rb.digest, "{kind:?} {format:?}");
            assert_eq!(ra.config_digest, rb.config_digest);
            assert_eq!(ra.layer_digests, rb.layer_digests);
            assert_eq!(tree(&pa), tree(&pb), "{kind:?} {format:?}");
        }
    }
}

#[test]
fn cli_writes_what_the_library_writes() {
    let d = tmp();
    let lib = d.path().join("lib.tar");
    let cli = d.path().join("cli.tar");
    let built = build(
        ImageKind::Layers,
        &lib,
        Format::OciArchive,
        "berth.test/layers:v1",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth-mkimage"))
        .args([
            "layers",
            "--format",
            "oci-archive",
            "--name",
            "berth.test/layers:v1",
            "--out",
        ])
        .arg(&cli)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["digest"], built.digest.to_string());
    assert_eq!(std::fs::read(&lib).unwrap(), std::fs::read(&cli).unwrap());
}

/// Golden digests with a fixed stand-in for busybox and a fixed platform, so they do
/// not depend on the host: a change here means the images' bytes changed (tar or JSON
/// layout, or the compressors' output).
#[test]
fn golden_digests() {
    let d = tmp();
    let fake = d.path().join("busybox");
    std::fs::write(&fake, b"#!/bin/sh\necho 'not really busybox'\n").unwrap();
    let opts = Options {
        busybox: fake,
        platform: Platform::parse("linux/amd64").unwrap(),
    };
    let got = |kind| {
        let b = assemble(kind, &opts).unwrap().built();
        let mut v = vec![b.digest.to_string(), b.config_digest.to_string()];
        v.extend(b.layer_digests.iter().map(Digest::to_string));
        v.extend(b.diff_ids.iter().map(Digest::to_string));
        v
    };
    let busybox = got(ImageKind::Busybox);
    let layers = got(ImageKind::Layers);
    let multiarch = got(ImageKind::Multiarch);
    println!("busybox {busybox:#?}\nlayers {layers:#?}\nmultiarch {multiarch:#?}");
    // the multiarch images share the busybox image's layer and first config
    assert_eq!(multiarch[1..], busybox[1..]);
    assert_eq!(busybox, GOLDEN_BUSYBOX);
    assert_eq!(layers, GOLDEN_LAYERS);
    assert_eq!(multiarch[0], GOLDEN_MULTIARCH_INDEX);
}

const GOLDEN_BUSYBOX: [&str; 4] = [
    "sha256:010733d54a1914c25bc02f4dde4e7d7c0902db5d65563a72672f3c87fd9d029c", // manifest
    "sha256:bd91fabe5c1bae2e047a932be332c21af2e81f438c53477ac87938cda6581d3c", // config
    "sha256:71a59390d5e0e32a60b558246717f0e531e432edec800cdf49d62e0a1e55fe50", // layer 1 (gzip)
    "sha256:abdede4f1529340785db0553e70296107c290da468759eb6f85440c854c27acd", // diff id 1
];
const GOLDEN_LAYERS: [&str; 10] = [
    "sha256:4b61bb34a74040cc7541d539a4e2dc23a3cfd8efa81f47b85e1906cd8cbd9009", // manifest
    "sha256:28e2b742e162b4728ac8812ef12af7863b909c09c21f4f03e4c40e1a9b2cda11", // config
    "sha256:71a59390d5e0e32a60b558246717f0e531e432edec800cdf49d62e0a1e55fe50", // layer 1 (gzip)
    "sha256:a9a2e8c36588c6711e268cf3f6a7208848c4139e6d844b6f56a0c10ab698d8d9", // layer 2 (gzip)
    "sha256:a209e0db697432b56899ae3245e9804fa8b39ecb351c99ecd4aa9ca0c6eacc13", // layer 3 (zstd)
    "sha256:8f0ff3f30f2afd1a91ecec81d278123d3774f6e068a7179722924b335b63d8a8", // layer 4 (tar)
    "sha256:abdede4f1529340785db0553e70296107c290da468759eb6f85440c854c27acd", // diff id 1
    "sha256:45fbe2e75fdcae5b33c23697da8f8701ecc39a0ea18e30808e0da8b1ed5d8686", // diff id 2
    "sha256:5e5dfa468346d1574de211b73a6295d68e519b2e68693adc48a03df96719ff6e", // diff id 3
    "sha256:8f0ff3f30f2afd1a91ecec81d278123d3774f6e068a7179722924b335b63d8a8", // diff id 4
];
/// The index.
const GOLDEN_MULTIARCH_INDEX: &str =
    "sha256:cc9146e5c514028d3a9cac0a28ef8513de6c7700e22557bfb675fe8e15abd560";

/// Reads a blob of an OCI layout, checking its digest and size.
fn blob(layout: &Path, digest: &Digest, size: u64) -> Vec<u8> {
    let bytes = std::fs::read(layout.join("blobs/sha256").join(digest.hex())).unwrap();
    assert_eq!(&Digest::of_bytes(&bytes), digest);
    assert_eq!(bytes.len() as u64, size);
    bytes
}

fn decompress(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match media::layer_compression(media_type).unwrap() {
        media::LayerCompression::Gzip => {
            flate2::read::GzDecoder::new(blob)
                .read_to_end(&mut out)
                .unwrap();
        }
        media::LayerCompression::Zstd => out = zstd::stream::decode_all(blob).unwrap(),
        media::LayerCompression::None => out = blob.to_vec(),
    }
    out
}

/// Checks one manifest of a layout with berth's parser; returns its config and the
/// uncompressed layer tars.
fn check_manifest(layout: &Path, desc: &oci_spec::image::Descriptor) -> (Config, Vec<Vec<u8>>) {
    let d = image::descriptor_digest(desc).unwrap();
    let bytes = blob(layout, &d, desc.size());
    let Parsed::Manifest(m) = image::parse(Some(desc.media_type().as_ref()), &bytes).unwrap()
    else {
        panic!("{d} is not a manifest")
    };
    assert_eq!(m, {
        let Parsed::Manifest(again) = image::parse(None, &bytes).unwrap() else {
            panic!()
        };
        again
    });
    let cfg_bytes = blob(layout, &m.config().digest, m.config().size);
    let config = Config::parse(&cfg_bytes).unwrap();
    config.check_manifest(&m).unwrap();
    let mut tars = Vec::new();
    for (l, diff_id) in m.layers().iter().zip(config.diff_ids()) {
        let tar = decompress(&l.media_type, &blob(layout, &l.digest, l.size));
        assert_eq!(&Digest::of_bytes(&tar), diff_id);
        tars.push(tar);
    }
    if let Some(p) = desc.platform() {
        assert_eq!(config.platform(), Platform::from_oci(p));
    }
    (config, tars)
}

#[test]
fn berth_parses_every_document() {
    for kind in KINDS {
        let d = tmp();
        let built = build(kind, d.path(), Format::OciDir, kind.default_name()).unwrap();
        let layout = d.path();
        let index_json = std::fs::read(layout.join("index.json")).unwrap();
        let Parsed::Index(top) = image::parse(None, &index_json).unwrap() else {
            panic!("index.json is not an index")
        };
        assert_eq!(top.manifests().len(), 1);
        let entry = &top.manifests()[0];
        assert_eq!(
            entry.annotations().as_ref().unwrap()[media::ANNOTATION_REF_NAME],
            "latest"
        );
        assert_eq!(image::descriptor_digest(entry).unwrap(), built.digest);
        match kind {
            ImageKind::Busybox | ImageKind::Layers => {
                // the layout's index names the platform, so select works on it too
                let chosen = top.select(&Platform::host()).unwrap();
                let (config, _) = check_manifest(layout, chosen);
                assert_eq!(config.diff_ids(), built.diff_ids.as_slice());
                assert_eq!(config.chain_ids(), built.chain_ids);
                assert_eq!(config.cmd(), ["sh"]);
                assert_eq!(
                    config.env(),
                    ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                );
                assert_eq!(config.platform(), Platform::host());
                let want_layers = if kind == ImageKind::Busybox { 1 } else { 4 };
                assert_eq!(built.diff_ids.len(), want_layers);
                if kind == ImageKind::Layers {
                    assert_eq!(config.working_dir(), Some("/data"));
                    let m: Vec<_> = built.manifests[0]
                        .layers
                        .iter()
                        .map(|l| l.media_type)
                        .collect();
                    assert_eq!(
                        m,
                        [
                            media::OCI_LAYER_GZIP,
                            media::OCI_LAYER_GZIP,
                            media::OCI_LAYER_ZSTD,
                            media::OCI_LAYER_TAR
                        ]
                    );
                }
            }
            ImageKind::Multiarch => {
                let idx_bytes = blob(layout, &built.digest, entry.size());
                let Parsed::Index(idx) = image::parse(Some(media::OCI_INDEX), &idx_bytes).unwrap()
                else {
                    panic!("multiarch top is not an index")
                };
                assert_eq!(idx.manifests().len(), 2);
                let host = Platform::host();
                let other = berth_mkimage::other_platform(&host);
                let chosen = idx.select(&host).unwrap();
                assert_eq!(
                    image::descriptor_digest(chosen).unwrap(),
                    built.manifest_digest
                );
                let (hc, _) = check_manifest(layout, chosen);
                let chosen = idx.select(&other).unwrap();
                let (oc, _) = check_manifest(layout, chosen);
                assert_eq!(oc.platform(), other);
                assert_eq!(hc.diff_ids(), oc.diff_ids(), "same layer on both platforms");
                let e = idx
                    .select(&Platform::parse("linux/s390x").unwrap())
                    .unwrap_err();
                assert_eq!(e.kind(), berth_engine::ErrorKind::NotFound);
            }
        }
    }
}

/// Entries of a tar: path → (type, bytes).
fn tar_entries(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, (e.header().entry_type(), data));
    }
    out
}

#[test]
fn oci_archive_holds_the_layout() {
    let d = tmp();
    for kind in KINDS {
        let dir = d.path().join(format!("{kind:?}-dir"));
        let file = d.path().join(format!("{kind:?}.tar"));
        build(kind, &dir, Format::OciDir, kind.default_name()).unwrap();
        build(kind, &file, Format::OciArchive, kind.default_name()).unwrap();
        let from_dir: BTreeMap<String, Vec<u8>> = tree(&dir)
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let from_tar: BTreeMap<String, Vec<u8>> = tar_entries(&std::fs::read(&file).unwrap())
            .into_iter()
            .filter(|(_, (t, _))| t.is_file())
            .map(|(k, (_, v))| (k, v))
            .collect();
        assert_eq!(from_dir, from_tar, "{kind:?}");
    }
}

#[test]
fn docker_archive_is_docker_save_shaped() {
    let d = tmp();
    for kind in [ImageKind::Busybox, ImageKind::Layers] {
        let file = d.path().join(format!("{kind:?}.tar"));
        let built = build(kind, &file, Format::DockerArchive, "berth.test/x:1").unwrap();
        let entries = tar_entries(&std::fs::read(&file).unwrap());
        let manifest: serde_json::Value =
            serde_json::from_slice(&entries["manifest.json"].1).unwrap();
        let m = &manifest[0];
        assert_eq!(m["RepoTags"], serde_json::json!(["berth.test/x:1"]));
        let config_name = m["Config"].as_str().unwrap();
        assert_eq!(config_name, format!("{}.json", built.config_digest.hex()));
        let config = &entries[config_name].1;
        assert_eq!(Digest::of_bytes(config), built.config_digest);
        let config = Config::parse(config).unwrap();
        let layers: Vec<&str> = m["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(layers.len(), config.diff_ids().len());
        for (name, diff_id) in layers.iter().zip(config.diff_ids()) {
            assert_eq!(*name, format!("{}/layer.tar", diff_id.hex()));
            assert_eq!(&Digest::of_bytes(&entries[*name].1), diff_id);
        }
        if let Some(out) = tool(
            "skopeo",
            &["inspect", &format!("docker-archive:{}", file.display())],
        ) {
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["Os"], "linux");
        }
    }
}

/// Runs a tool if installed: `None` (and a note) if it is missing; panics if it fails.
fn tool(name: &str, args: &[&str]) -> Option<Vec<u8>> {
    match Command::new(name).args(args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping {name} {args:?}: {name} is not installed (tools/install-deps.sh installs it)");
            None
        }
        Err(e) => panic!("{name}: {e}"),
        Ok(o) => {
            assert!(
                o.status.success(),
                "{name} {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(o.stdout)
        }
    }
}

#[test]
fn skopeo_and_umoci_accept_the_layouts() {
    let d = tmp();
    for kind in KINDS {
        let dir = d.path().join(format!("{kind:?}"));
        let file = d.path().join(format!("{kind:?}.tar"));
        let built = build(kind, &dir, Format::OciDir, kind.default_name()).unwrap();
        build(kind, &file, Format::OciArchive, kind.default_name()).unwrap();
        let oci = format!("oci:{}:latest", dir.display());
        let archive = format!("oci-archive:{}:latest", file.display());
        if let Some(raw) = tool("skopeo", &["inspect", "--raw", &oci]) {
            assert_eq!(Digest::of_bytes(&raw), built.digest);
        }
        for r in [&oci, &archive] {
            if let Some(out) = tool("skopeo", &["inspect", r]) {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                // skopeo reports the digest of what the tag names (the index for multiarch)
                assert_eq!(v["Digest"], built.digest.to_string(), "{r}");
                assert_eq!(v["Architecture"], Platform::host().architecture);
            }
        }
        if kind == ImageKind::Multiarch {
            let other = berth_mkimage::other_platform(&Platform::host());
            let mut args = vec!["inspect", "--override-arch", &other.architecture];
            if let Some(v) = &other.variant {
                args.extend(["--override-variant", v]);
            }
            args.push(&oci);
            if let Some(out) = tool("skopeo", &args) {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(v["Architecture"], other.architecture);
            }
        } else {
            // umoci 0.4 reads single-manifest layouts (not nested indexes)
            tool(
                "umoci",
                &["stat", "--image", &format!("{}:latest", dir.display())],
            );
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// umoci (an independent implementation) unpacks the `layers` image (recompressed to
/// gzip by skopeo, as umoci 0.4 has no zstd) into exactly the documented view.
#[test]
fn umoci_unpacks_the_documented_view() {
    if !is_root() {
        eprintln!("skipping: umoci unpack needs root");
        return;
    }
    let d = tmp();
    let dir = d.path().join("layers");
    build(
        ImageKind::Layers,
        &dir,
        Format::OciDir,
        "berth.test/layers:latest",
    )
    .unwrap();
    let gz = d.path().join("layers-gz");
    let Some(_) = tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-compress",
            "--dest-compress-format",
            "gzip",
            &format!("oci:{}:latest", dir.display()),
            &format!("oci:{}:latest", gz.display()),
        ],
    ) else {
        return;
    };
    let bundle = d.path().join("bundle");
    let Some(_) = tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:latest", gz.display()),
            &bundle.to_string_lossy(),
        ],
    ) else {
        return;
    };
    let rootfs = bundle.join("rootfs");
    let probe = d.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let xattrs = xattr::set(&probe, "user.probe", b"1").is_ok();
    berth_mkimage::contents::check_layers_view(&rootfs, xattrs).unwrap();
    assert_eq!(
        std::fs::read(rootfs.join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
}

/// A node of the in-memory filesystem the layers are applied to.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Dir(u32),
    File {
        mode: u32,
        data: Vec<u8>,
        ino: usize,
        xattrs: BTreeMap<String, Vec<u8>>,
    },
    Symlink(String),
    Fifo(u32),
}

/// Applies one layer tar to `fs` with OCI whiteout semantics.
fn apply(fs: &mut BTreeMap<String, Node>, tar: &[u8], next_ino: &mut usize) {
    let mut added: BTreeSet<String> = BTreeSet::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), path.clone()),
        };
        let prefix = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                format!("{p}/")
            }
        };
        if name == ".wh..wh..opq" {
            let under = prefix(&dir);
            fs.retain(|k, _| !k.starts_with(&under) || added.contains(k));
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let target = format!("{}{gone}", prefix(&dir));
            let under = format!("{target}/");
            assert!(fs.contains_key(&target), "whiteout of missing {target}");
            fs.retain(|k, _| k != &target && !k.starts_with(&under));
            continue;
        }
        let h = e.header().clone();
        let mode = h.mode().unwrap();
        let node = match h.entry_type() {
            tar::EntryType::Directory => Node::Dir(mode),
            tar::EntryType::Regular => {
                let mut xattrs = BTreeMap::new();
                if let Some(pax) = e.pax_extensions().unwrap() {
                    for ext in pax {
                        let ext = ext.unwrap();
                        if let Some(n) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                            xattrs.insert(n.to_string(), ext.value_bytes().to_vec());
                        }
                    }
                }
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                *next_ino += 1;
                Node::File {
                    mode,
                    data,
                    ino: *next_ino,
                    xattrs,
                }
            }
            tar::EntryType::Symlink => Node::Symlink(
                h.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Link => {
                let target = h
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                fs[&target].clone()
            }
            tar::EntryType::Fifo => Node::Fifo(mode),
            other => panic!("unexpected entry type {other:?} at {path}"),
        };
        if !matches!(node, Node::Dir(_)) {
            let under = format!("{path}/");
            fs.retain(|k, _| !k.starts_with(&under));
        }
        fs.insert(path.clone(), node);
        added.insert(path);
    }
}

/// Applying the `layers` image's tars to an in-memory filesystem gives exactly what
/// `expected_layers_view` documents.
#[test]
fn layers_apply_to_the_documented_view() {
    let img = assemble(ImageKind::Layers, &Options::default()).unwrap();
    let mut fs = BTreeMap::new();
    let mut ino = 0;
    for l in &img.manifests[0].layers {
        apply(&mut fs, &img.tars[&l.diff_id], &mut ino);
    }
    for (path, want) in expected_layers_view() {
        let got = fs.get(path);
        match (&want, got) {
            (Expected::Absent, None) => {}
            (Expected::Dir { mode }, Some(Node::Dir(m))) => assert_eq!(mode, m, "{path}"),
            (Expected::Symlink { target }, Some(Node::Symlink(t))) => {
                assert_eq!(target, t, "{path}")
            }
            (Expected::Fifo { mode }, Some(Node::Fifo(m))) => assert_eq!(mode, m, "{path}"),
            (
                Expected::File {
                    mode,
                    content,
                    same_inode_as,
                    xattr,
                },
                Some(Node::File {
                    mode: m,
                    data,
                    ino,
                    xattrs,
                }),
            ) => {
                assert_eq!(mode, m, "{path}");
                assert_eq!(content, data, "{path}");
                if let Some(other) = same_inode_as {
                    let Some(Node::File { ino: o, .. }) = fs.get(*other) else {
                        panic!("{other}")
                    };
                    assert_eq!(ino, o, "{path} is not a hard link of {other}");
                }
                if let Some((n, v)) = xattr {
                    assert_eq!(xattrs.get(*n).map(Vec::as_slice), Some(*v), "{path}");
                }
            }
            (want, got) => panic!("{path}: want {want:?}, got {got:?}"),
        }
    }
    for (dir, names) in EXACT_DIRS {
        let under = format!("{dir}/");
        let got: Vec<&str> = fs
            .keys()
            .filter_map(|k| k.strip_prefix(&under))
            .filter(|k| !k.contains('/'))
            .collect();
        assert_eq!(got, *names, "{dir}");
    }
    // every applet is a symlink to busybox
    for a in berth_mkimage::contents::APPLETS {
        assert_eq!(
            fs.get(&format!("bin/{a}")),
            Some(&Node::Symlink("busybox".into()))
        );
    }
    let Some(Node::File { data, mode, .. }) = fs.get("bin/busybox") else {
        panic!()
    };
    assert_eq!(*mode, 0o755);
    assert_eq!(data, &std::fs::read("/bin/busybox").unwrap());
}
