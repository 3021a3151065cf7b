//! Writing an assembled [`Image`]: OCI layout directory, OCI archive, docker-save tar.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_engine::image::media;

use crate::docs::*;
use crate::tarball::{self, Entry};
use crate::{json, top_platform, Image};

/// Annotation containerd's import reads the full image name from.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// `repo[:tag]`, split.
pub(crate) struct Reference {
    /// The whole name with its tag (`berth.test/busybox:latest`).
    pub full: String,
    /// The tag alone (`latest`).
    pub tag: String,
}

impl Reference {
    pub(crate) fn parse(name: &str) -> Result<Self> {
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_whitespace) {
            bail!("image name {name:?} must be repo[:tag] (no digest, no spaces)");
        }
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
            None => (name, "latest"),
        };
        if repo.is_empty() || tag.is_empty() {
            bail!("image name {name:?} must be repo[:tag]");
        }
        Ok(Reference {
            full: format!("{repo}:{tag}"),
            tag: tag.to_string(),
        })
    }
}

/// The layout's files: path → bytes, sorted.
fn layout_files(image: &Image, r: &Reference) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (d, bytes) in &image.blobs {
        files.insert(format!("blobs/sha256/{}", d.hex()), bytes.clone());
    }
    files.insert(
        "oci-layout".to_string(),
        json(&LayoutDoc {
            image_layout_version: "1.0.0".into(),
        })?,
    );
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_IMAGE_NAME.to_string(), r.full.clone());
    annotations.insert(media::ANNOTATION_REF_NAME.to_string(), r.tag.clone());
    let index = IndexDoc {
        schema_version: 2,
        media_type: media::OCI_INDEX.into(),
        manifests: vec![DescriptorDoc {
            media_type: image.media_type.into(),
            digest: image.digest.to_string(),
            size: image.size,
            platform: top_platform(image)?,
            annotations,
        }],
    };
    files.insert("index.json".to_string(), json(&index)?);
    Ok(files)
}

/// An OCI image layout at `out` (created if missing). Blobs are content-addressed;
/// `index.json` names only this image.
pub(crate) fn write_oci_dir(image: &Image, out: &Path, r: &Reference) -> Result<()> {
    for (rel, bytes) in layout_files(image, r)? {
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Directory entries for every parent of `paths`.
fn with_parents(files: BTreeMap<String, Vec<u8>>) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_string());
            p = parent;
        }
        entries.push(Entry::file(&path, 0o644, bytes));
    }
    entries.extend(dirs.iter().map(|d| Entry::dir(d, 0o755)));
    entries
}

fn write_file(out: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
}

/// The OCI layout as one deterministic tar at `out`.
pub(crate) fn write_oci_archive(image: &Image, out: &Path, r: &Reference) -> Result<()> {
    let tar = tarball::tar(&with_parents(layout_files(image, r)?))?;
    write_file(out, &tar)
}

/// A classic `docker save` tar: `manifest.json` (`[{Config, RepoTags, Layers}]`), the
/// config as `<config-hex>.json` and each layer uncompressed as
/// `<diff-id-hex>/layer.tar`.
pub(crate) fn write_docker_archive(image: &Image, out: &Path, r: &Reference) -> Result<()> {
    if image.manifests.len() != 1 {
        bail!("a docker archive holds one platform; write multiarch as oci-dir or oci-archive");
    }
    let m = &image.manifests[0];
    let mut files = BTreeMap::new();
    let config_name = format!("{}.json", m.config_digest.hex());
    let config = image
        .blobs
        .get(&m.config_digest)
        .context("config blob missing")?;
    files.insert(config_name.clone(), config.clone());
    let mut layer_names = Vec::new();
    for l in &m.layers {
        let name = format!("{}/layer.tar", l.diff_id.hex());
        let tar = image.tars.get(&l.diff_id).context("layer tar missing")?;
        files.insert(name.clone(), tar.clone());
        layer_names.push(name);
    }
    let manifest = vec![DockerSaveDoc {
        config: config_name,
        repo_tags: vec![r.full.clone()],
        layers: layer_names,
    }];
    files.insert("manifest.json".into(), json(&manifest)?);
    let tar = tarball::tar(&with_parents(files))?;
    write_file(out, &tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("berth.test/busybox:1.0").unwrap();
        assert_eq!(
            (r.full.as_str(), r.tag.as_str()),
            ("berth.test/busybox:1.0", "1.0")
        );
        let r = Reference::parse("localhost:5000/busybox").unwrap();
        assert_eq!(r.full, "localhost:5000/busybox:latest");
        assert_eq!(r.tag, "latest");
        for bad in ["", "a b", "x@sha256:00", "repo:", ":tag"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
