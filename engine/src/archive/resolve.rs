//! After the stream: checking what the archive's images reference and naming them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::Path;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

use super::import::{Scanned, Sink};
use super::{invalid, is_attestation, normalise, read_document, ImportOptions};
use super::{ANNOTATION_IMAGE_NAME, MAX_INDEX_DEPTH};
use crate::content::{LocalStore, Provider};
use crate::event::Target;
use crate::ids::{Digest, ImageName};
use crate::image::media::{self, DocumentKind};
use crate::image::{self, descriptor_digest, Config, Manifest, Parsed};
use crate::{EngineError, Result};

/// Named images and checked manifests.
type Resolved = (Vec<(ImageName, Target)>, Vec<Digest>);

/// Checks and names the images of a scanned archive.
pub(super) fn resolve(
    opts: &ImportOptions,
    scanned: &Scanned,
    sink: &mut Sink<'_>,
) -> Result<Resolved> {
    let resolved = if let Some(index) = &scanned.index_json {
        oci(opts, scanned, index, sink.store)?
    } else if let Some(manifest) = &scanned.manifest_json {
        docker(opts, scanned, manifest, sink)?
    } else if scanned.oci_layout || scanned.blobs_dir {
        return Err(invalid(
            "index.json is missing: an OCI image layout archive must have one",
        ));
    } else {
        return Err(invalid(
            "the archive has neither index.json (OCI image layout) nor manifest.json (docker save)",
        ));
    };
    if resolved.0.is_empty() {
        return Err(invalid("the archive holds no images"));
    }
    Ok(resolved)
}

/// One entry of a docker `manifest.json`.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn docker_entries(bytes: &[u8]) -> Result<Vec<DockerEntry>> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest.json is not valid: {e}")))
}

/// The blob a path of the archive names (following docker's layer links).
fn lookup(scanned: &Scanned, path: &str, what: &str) -> Result<(Digest, u64)> {
    let missing = || invalid(format!("{what} points at missing file {path:?}"));
    let mut key = normalise(Path::new(path))
        .map_err(|e| invalid(format!("{what}: {e}")))?
        .join("/");
    for _ in 0..8 {
        if let Some(blob) = scanned.files.get(&key) {
            return Ok(blob.clone());
        }
        match scanned.links.get(&key) {
            Some(target) => key = target.clone(),
            None => return Err(missing()),
        }
    }
    Err(missing())
}

fn add_name(images: &mut Vec<(ImageName, Target)>, name: ImageName, target: &Target) -> Result<()> {
    match images.iter().find(|(n, _)| *n == name) {
        Some((_, t)) if t == target => Ok(()),
        Some((_, t)) => Err(invalid(format!(
            "the archive gives the name {name} to two images ({} and {})",
            t.digest, target.digest
        ))),
        None => {
            images.push((name, target.clone()));
            Ok(())
        }
    }
}

/// Applies [`ImportOptions::name`]: the single image gets it.
fn the_one(name: &ImageName, targets: &[Target]) -> Result<Vec<(ImageName, Target)>> {
    let distinct: BTreeSet<&Digest> = targets.iter().map(|t| &t.digest).collect();
    match (distinct.len(), targets.first()) {
        (1, Some(t)) => Ok(vec![(name.clone(), t.clone())]),
        (0, _) => Err(invalid("the archive holds no images")),
        (n, _) => Err(invalid(format!(
            "the archive holds {n} images; a name can be given only to an archive holding one \
             (import it without a name to use the names it carries)"
        ))),
    }
}

// ---- OCI image layout ----

fn oci(
    opts: &ImportOptions,
    scanned: &Scanned,
    index_json: &[u8],
    store: &LocalStore,
) -> Result<Resolved> {
    let index = match image::parse(Some(media::OCI_INDEX), index_json)
        .map_err(|e| invalid(format!("index.json: {e}")))?
    {
        Parsed::Index(i) => i,
        Parsed::Manifest(_) => return Err(invalid("index.json is a manifest, not an image index")),
    };
    let mut checker = Checker {
        store,
        manifests: Vec::new(),
        checked: HashSet::new(),
    };
    let mut tops = Vec::new();
    for (i, desc) in index.manifests().iter().enumerate() {
        let what = format!("index.json entry {i}");
        let digest = descriptor_digest(desc).map_err(|e| invalid(format!("{what}: {e}")))?;
        let media_type = desc.media_type().to_string();
        match media::document_kind(&media_type) {
            Some(DocumentKind::Index | DocumentKind::Manifest) => {}
            Some(DocumentKind::Schema1) => {
                return Err(invalid(format!("{what} ({digest}): {}", media::SCHEMA1_REFUSAL)))
            }
            None => {
                return Err(invalid(format!(
                    "{what} ({digest}) has media type {media_type:?}, which is not an image index or manifest"
                )))
            }
        }
        if !checker.present(&digest, desc.size(), &what)? {
            return Err(invalid(format!("{what} points at missing blob {digest}")));
        }
        let parsed = checker.document(&digest, &media_type, 0)?;
        let target = Target {
            media_type: parsed.media_type().to_string(),
            digest,
            size: desc.size(),
        };
        tops.push((what, desc, parsed, target));
    }

    let mut images = Vec::new();
    if let Some(name) = &opts.name {
        let targets: Vec<Target> = tops.iter().map(|t| t.3.clone()).collect();
        images = the_one(name, &targets)?;
    } else {
        let mut docker_names: Option<BTreeMap<Digest, Vec<String>>> = None;
        for (what, desc, parsed, target) in &tops {
            let names = oci_names(scanned, &mut docker_names, what, desc, parsed, target)?;
            for name in names {
                add_name(&mut images, name, target)?;
            }
        }
    }
    Ok((images, checker.manifests))
}

/// The names of an `index.json` entry (see the naming rules).
fn oci_names(
    scanned: &Scanned,
    docker_names: &mut Option<BTreeMap<Digest, Vec<String>>>,
    what: &str,
    desc: &Descriptor,
    parsed: &Parsed,
    target: &Target,
) -> Result<Vec<ImageName>> {
    let parse = |raw: &str| ImageName::parse(raw).map_err(|e| invalid(format!("{what}: {e}")));
    let annotations = desc.annotations().clone().unwrap_or_default();
    if let Some(name) = annotations.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![parse(name)?]);
    }
    let ref_name = annotations.get(media::ANNOTATION_REF_NAME);
    if let Some(r) = ref_name {
        if r.contains(['/', ':', '@']) {
            return Ok(vec![parse(r)?]);
        }
    }
    // Docker 25+: manifest.json's RepoTags, matched by config digest.
    if let (Some(bytes), Parsed::Manifest(m)) = (&scanned.manifest_json, parsed) {
        if docker_names.is_none() {
            let mut map: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
            for (i, e) in docker_entries(bytes)?.into_iter().enumerate() {
                let (config, _) = lookup(scanned, &e.config, &format!("manifest.json entry {i}"))?;
                map.entry(config)
                    .or_default()
                    .extend(e.repo_tags.unwrap_or_default());
            }
            *docker_names = Some(map);
        }
        let config = &m.config().digest;
        if let Some(tags) = docker_names.as_ref().and_then(|map| map.get(config)) {
            if !tags.is_empty() {
                return tags.iter().map(|t| parse(t)).collect();
            }
        }
    }
    Err(invalid(match ref_name {
        Some(tag) => format!(
            "{what} ({}) is named only by the tag {tag:?}; give the image a name (?name=)",
            target.digest
        ),
        None => format!(
            "{what} ({}) has no image name; give the image a name (?name=)",
            target.digest
        ),
    }))
}

/// Checks documents and the blobs they reference.
struct Checker<'a> {
    store: &'a LocalStore,
    manifests: Vec<Digest>,
    checked: HashSet<Digest>,
}

impl Checker<'_> {
    /// Whether the blob is in the store (from the archive or from before); an error if
    /// it is there with another size than `referrer` states.
    fn present(&self, digest: &Digest, size: u64, referrer: &str) -> Result<bool> {
        match self.store.info(digest) {
            Ok(info) if info.size == size => Ok(true),
            Ok(info) => Err(invalid(format!(
                "{referrer} says blob {digest} has {size} bytes, but it has {}",
                info.size
            ))),
            Err(EngineError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Parses a present document and checks what it references.
    fn document(&mut self, digest: &Digest, media_type: &str, depth: usize) -> Result<Parsed> {
        let bytes = read_document(self.store, digest)?;
        let parsed = image::parse(Some(media_type), &bytes)
            .map_err(|e| invalid(format!("blob {digest}: {e}")))?;
        match &parsed {
            Parsed::Manifest(m) => self.manifest(digest, m)?,
            Parsed::Index(i) => self.index(digest, i, depth)?,
        }
        Ok(parsed)
    }

    fn manifest(&mut self, digest: &Digest, m: &Manifest) -> Result<()> {
        if !self.checked.insert(digest.clone()) {
            return Ok(());
        }
        let what = format!("manifest {digest}");
        let config = m.config();
        if !self.present(&config.digest, config.size, &what)? {
            return Err(invalid(format!(
                "{what} points at missing blob {}",
                config.digest
            )));
        }
        let parsed = Config::parse(&read_document(self.store, &config.digest)?)
            .map_err(|e| invalid(format!("config {} of {what}: {e}", config.digest)))?;
        parsed
            .check_manifest(m)
            .map_err(|e| invalid(format!("{what}: {e}")))?;
        for layer in m.layers() {
            if !self.present(&layer.digest, layer.size, &what)? {
                return Err(invalid(format!(
                    "{what} points at missing blob {}",
                    layer.digest
                )));
            }
        }
        self.manifests.push(digest.clone());
        Ok(())
    }

    /// Checks every image manifest of the index that the archive holds; at least one
    /// must be there.
    fn index(&mut self, digest: &Digest, index: &image::Index, depth: usize) -> Result<()> {
        if depth >= MAX_INDEX_DEPTH {
            return Err(invalid(format!(
                "index {digest} nests indexes more than {MAX_INDEX_DEPTH} deep"
            )));
        }
        let what = format!("index {digest}");
        let mut held = 0usize;
        for child in index.manifests() {
            let media_type = child.media_type().to_string();
            if is_attestation(child) || media::document_kind(&media_type).is_none() {
                continue;
            }
            let child_digest = descriptor_digest(child)?;
            if !self.present(&child_digest, child.size(), &what)? {
                continue;
            }
            self.document(&child_digest, &media_type, depth + 1)
                .map_err(|e| match e {
                    EngineError::InvalidArgument(msg) => invalid(format!("{what}: {msg}")),
                    other => other,
                })?;
            held += 1;
        }
        if held == 0 {
            return Err(invalid(format!(
                "{what} names {} manifests but the archive holds none of its images",
                index.manifests().len()
            )));
        }
        Ok(())
    }
}

// ---- docker save ----

/// A descriptor as berth writes it.
#[derive(Debug, Serialize)]
pub(super) struct Desc<'a> {
    #[serde(rename = "mediaType")]
    pub media_type: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Debug, Serialize)]
struct ManifestDoc<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Desc<'a>,
    layers: Vec<Desc<'a>>,
}

/// The OCI layer media type of a docker layer, by its first bytes.
fn sniff_layer(store: &LocalStore, digest: &Digest) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let mut blob = store.open(digest)?;
    let mut got = 0;
    while got < head.len() {
        match blob.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EngineError::Internal(format!("read blob {digest}: {e}"))),
        }
    }
    Ok(match &head[..got] {
        [0x1f, 0x8b, ..] => media::OCI_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => media::OCI_LAYER_ZSTD,
        _ => media::OCI_LAYER_TAR,
    })
}

fn docker(
    opts: &ImportOptions,
    scanned: &Scanned,
    manifest_json: &[u8],
    sink: &mut Sink<'_>,
) -> Result<Resolved> {
    let entries = docker_entries(manifest_json)?;
    if entries.is_empty() {
        return Err(invalid("manifest.json lists no images"));
    }
    let store = sink.store;
    // Every check first; manifests are written only when all passed.
    let mut built: Vec<(Vec<u8>, Vec<ImageName>, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let what = format!("manifest.json entry {i}");
        let (config_digest, config_size) = lookup(scanned, &e.config, &what)?;
        let config = Config::parse(&read_document(store, &config_digest)?)
            .map_err(|err| invalid(format!("{what}: config {:?}: {err}", e.config)))?;
        if config.diff_ids().len() != e.layers.len() {
            return Err(invalid(format!(
                "{what}: config {:?} lists {} diff ids but the entry has {} layers",
                e.config,
                config.diff_ids().len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in e.layers.iter().zip(config.diff_ids()) {
            let (digest, size) = lookup(scanned, path, &what)?;
            let media_type = sniff_layer(store, &digest)?;
            if media_type == media::OCI_LAYER_TAR && digest != *diff_id {
                return Err(invalid(format!(
                    "{what}: layer {path:?} hashes to {digest}, but the config's diff id is {diff_id}"
                )));
            }
            layers.push((media_type, digest, size));
        }
        let doc = ManifestDoc {
            schema_version: 2,
            media_type: media::OCI_MANIFEST,
            config: Desc {
                media_type: media::OCI_CONFIG,
                digest: &config_digest,
                size: config_size,
                annotations: None,
            },
            layers: layers
                .iter()
                .map(|(media_type, digest, size)| Desc {
                    media_type,
                    digest,
                    size: *size,
                    annotations: None,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&doc)
            .map_err(|err| EngineError::Internal(format!("encode manifest of {what}: {err}")))?;
        match image::parse(Some(media::OCI_MANIFEST), &bytes).map_err(|err| {
            EngineError::Internal(format!("manifest synthesized for {what}: {err}"))
        })? {
            Parsed::Manifest(m) => config
                .check_manifest(&m)
                .map_err(|err| invalid(format!("{what}: {err}")))?,
            Parsed::Index(_) => {
                return Err(EngineError::Internal(format!(
                    "manifest synthesized for {what} parses as an index"
                )))
            }
        }
        let names = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| ImageName::parse(t).map_err(|err| invalid(format!("{what}: {err}"))))
            .collect::<Result<Vec<_>>>()?;
        built.push((bytes, names, what));
    }

    let target_of = |bytes: &[u8]| Target {
        media_type: media::OCI_MANIFEST.to_string(),
        digest: Digest::of_bytes(bytes),
        size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
    };
    let mut images = Vec::new();
    if let Some(name) = &opts.name {
        let targets: Vec<Target> = built.iter().map(|b| target_of(&b.0)).collect();
        images = the_one(name, &targets)?;
    } else {
        for (bytes, names, what) in &built {
            if names.is_empty() {
                return Err(invalid(format!(
                    "{what} has no RepoTags; give the image a name (?name=)"
                )));
            }
            let target = target_of(bytes);
            for name in names {
                add_name(&mut images, name.clone(), &target)?;
            }
        }
    }

    let mut manifests: Vec<Digest> = Vec::new();
    for (bytes, _, what) in &built {
        let digest = sink.bytes(bytes, &format!("(manifest synthesized for {what})"))?;
        if !manifests.contains(&digest) {
            manifests.push(digest);
        }
    }
    Ok((images, manifests))
}
