//! Deterministic test images for berth, built from Debian's busybox-static
//! (`/bin/busybox`): the same inputs give the same bytes and digests on every run, and
//! no test needs the internet.
//!
//! Images ([`ImageKind`]):
//! - `busybox`: one gzip layer ([`contents::busybox_layer`]): `bin/busybox`, applet
//!   symlinks, `etc/passwd`/`etc/group`, `tmp` (1777), `root`, `proc`, `sys`, `dev`.
//!   Config: `Env` [`contents::PATH_ENV`], `Cmd ["sh"]`, os `linux`, the host's
//!   architecture. OCI manifest.
//! - `layers`: the busybox layer, then [`contents::layer2`] (gzip: files, hard link,
//!   symlinks), [`contents::layer3`] (zstd: whiteouts, opaque directory, a modified
//!   file) and [`contents::layer4`] (plain tar: setuid file, PAX xattr, fifo).
//!   `WorkingDir /data`. The unpacked result is [`contents::expected_layers_view`];
//!   [`contents::check_layers_view`] checks a directory against it.
//! - `multiarch`: an OCI index of two busybox manifests, the host's platform and
//!   another (`linux/arm64/v8`, or `linux/amd64` on an arm64 host) whose config
//!   declares that architecture over the same layer (it need not run).
//!
//! Output formats ([`Format`]): an OCI image layout directory, the same as a tar, or a
//! classic `docker save` tar (uncompressed `<diff-id-hex>/layer.tar` + `manifest.json`).
//!
//! Determinism: sorted tar entries, mtime 2024-01-01T00:00:00Z ([`tarball::EPOCH`]),
//! uid/gid 0, fixed modes, no atime/ctime; gzip without name and mtime at level 6;
//! zstd level 3; JSON from structs with a fixed field order; config `created` fixed.
//! Digests change only with the busybox binary or the compressors' versions
//! (flate2/zlib-rs, zstd, pinned by `Cargo.lock`).

pub mod contents;
mod docs;
mod output;
pub mod tarball;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::ids::Digest;
use berth_engine::image::{chain_ids, media, Platform};
use serde::Serialize;

use docs::*;
use tarball::{Entry, CREATED};

/// Which image to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageKind {
    /// One layer: busybox and its applets.
    Busybox,
    /// Busybox plus three layers exercising whiteouts, opaque directories, hard links,
    /// symlinks, zstd, setuid, xattrs and fifos.
    Layers,
    /// An OCI index: the host platform's busybox image and another platform's.
    Multiarch,
}

impl ImageKind {
    /// The reference used when none is given (`berth.test/<kind>:latest`).
    pub fn default_name(self) -> &'static str {
        match self {
            ImageKind::Busybox => "berth.test/busybox:latest",
            ImageKind::Layers => "berth.test/layers:latest",
            ImageKind::Multiarch => "berth.test/multiarch:latest",
        }
    }
}

/// How to write the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`).
    OciDir,
    /// That layout as one tar file.
    OciArchive,
    /// A classic `docker save` tar (single platform only).
    DockerArchive,
}

/// Inputs besides the kind.
#[derive(Debug, Clone)]
pub struct Options {
    /// The busybox binary whose bytes go into `bin/busybox` (default `/bin/busybox`).
    pub busybox: PathBuf,
    /// The platform of the (first) image (default: the host's).
    pub platform: Platform,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            busybox: PathBuf::from("/bin/busybox"),
            platform: Platform::host(),
        }
    }
}

/// One layer as built.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Media type (gzip, zstd or plain tar).
    pub media_type: &'static str,
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// One single-platform image of what was built.
#[derive(Debug, Clone, Serialize)]
pub struct ImageManifest {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// The config's digest (Docker's image id).
    pub config_digest: Digest,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

/// An assembled image: every blob in memory, ready to be written in any [`Format`].
#[derive(Debug, Clone)]
pub struct Image {
    /// Which image.
    pub kind: ImageKind,
    /// Media type of the top document ([`media::OCI_MANIFEST`] or [`media::OCI_INDEX`]).
    pub media_type: &'static str,
    /// Digest of the top document.
    pub digest: Digest,
    /// Size of the top document.
    pub size: u64,
    /// The images, the host's (or [`Options::platform`]'s) first.
    pub manifests: Vec<ImageManifest>,
    /// Every blob (layers, configs, manifests, index) by digest.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
    /// The uncompressed layer tars by diff id.
    pub tars: BTreeMap<Digest, Vec<u8>>,
}

/// What [`build`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// Digest of the top document: the manifest, or the index for `multiarch`.
    pub digest: Digest,
    /// Its media type.
    pub media_type: &'static str,
    /// Digest of the first image's manifest (equal to `digest` but for `multiarch`).
    pub manifest_digest: Digest,
    /// Digest of the first image's config.
    pub config_digest: Digest,
    /// Digests of the first image's layer blobs, bottom first.
    pub layer_digests: Vec<Digest>,
    /// Its diff ids, bottom first.
    pub diff_ids: Vec<Digest>,
    /// Its chain ids, bottom first.
    pub chain_ids: Vec<Digest>,
    /// Every image (platform, manifest digest…).
    pub manifests: Vec<ImageManifest>,
}

impl Image {
    /// The summary of this image.
    pub fn built(&self) -> Built {
        let first = &self.manifests[0];
        let diff_ids: Vec<Digest> = first.layers.iter().map(|l| l.diff_id.clone()).collect();
        Built {
            digest: self.digest.clone(),
            media_type: self.media_type,
            manifest_digest: first.digest.clone(),
            config_digest: first.config_digest.clone(),
            layer_digests: first.layers.iter().map(|l| l.digest.clone()).collect(),
            chain_ids: chain_ids(&diff_ids),
            diff_ids,
            manifests: self.manifests.clone(),
        }
    }

    /// Writes the image to `out` in `format`, tagged `name` (`repo[:tag]`, tag
    /// `latest` by default).
    pub fn write(&self, out: &Path, format: Format, name: &str) -> Result<Built> {
        let reference = output::Reference::parse(name)?;
        match format {
            Format::OciDir => output::write_oci_dir(self, out, &reference)?,
            Format::OciArchive => output::write_oci_archive(self, out, &reference)?,
            Format::DockerArchive => output::write_docker_archive(self, out, &reference)?,
        }
        Ok(self.built())
    }
}

/// Builds `kind` with the default [`Options`] and writes it to `out`.
pub fn build(kind: ImageKind, out: &Path, format: Format, name: &str) -> Result<Built> {
    assemble(kind, &Options::default())?.write(out, format, name)
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

fn size_of(b: &[u8]) -> Result<u64> {
    Ok(u64::try_from(b.len())?)
}

/// Collects blobs while an image is assembled.
#[derive(Default)]
struct Blobs {
    blobs: BTreeMap<Digest, Vec<u8>>,
    tars: BTreeMap<Digest, Vec<u8>>,
}

impl Blobs {
    fn add(&mut self, bytes: Vec<u8>) -> Result<(Digest, u64)> {
        let d = Digest::of_bytes(&bytes);
        let size = size_of(&bytes)?;
        self.blobs.insert(d.clone(), bytes);
        Ok((d, size))
    }

    fn layer(&mut self, entries: &[Entry], media_type: &'static str) -> Result<Layer> {
        let tar = tarball::tar(entries)?;
        let diff_id = Digest::of_bytes(&tar);
        let blob = match media::layer_compression(media_type) {
            Some(media::LayerCompression::Gzip) => tarball::gzip(&tar)?,
            Some(media::LayerCompression::Zstd) => tarball::zstd(&tar)?,
            Some(media::LayerCompression::None) => tar.clone(),
            None => bail!("{media_type} is not a layer media type"),
        };
        let (digest, size) = self.add(blob)?;
        self.tars.insert(diff_id.clone(), tar);
        Ok(Layer {
            media_type,
            digest,
            size,
            diff_id,
        })
    }

    /// Writes config + manifest for `layers` on `platform`.
    fn image(
        &mut self,
        platform: &Platform,
        layers: Vec<(Layer, &str)>,
        run: RunConfigDoc,
    ) -> Result<ImageManifest> {
        let config = ConfigDoc {
            created: CREATED.into(),
            architecture: platform.architecture.clone(),
            variant: platform.variant.clone(),
            os: platform.os.clone(),
            config: run,
            rootfs: RootFsDoc {
                typ: "layers".into(),
                diff_ids: layers.iter().map(|(l, _)| l.diff_id.to_string()).collect(),
            },
            history: layers
                .iter()
                .map(|(_, by)| HistoryDoc {
                    created: CREATED.into(),
                    created_by: format!("berth-mkimage: {by}"),
                })
                .collect(),
        };
        let (config_digest, config_size) = self.add(json(&config)?)?;
        let manifest = ManifestDoc {
            schema_version: 2,
            media_type: media::OCI_MANIFEST.into(),
            config: DescriptorDoc {
                media_type: media::OCI_CONFIG.into(),
                digest: config_digest.to_string(),
                size: config_size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: layers
                .iter()
                .map(|(l, _)| DescriptorDoc {
                    media_type: l.media_type.into(),
                    digest: l.digest.to_string(),
                    size: l.size,
                    platform: None,
                    annotations: BTreeMap::new(),
                })
                .collect(),
        };
        let (digest, size) = self.add(json(&manifest)?)?;
        Ok(ImageManifest {
            platform: platform.to_string(),
            digest,
            size,
            config_digest,
            layers: layers.into_iter().map(|(l, _)| l).collect(),
        })
    }
}

fn busybox_run() -> RunConfigDoc {
    RunConfigDoc {
        exposed_ports: BTreeMap::new(),
        env: vec![contents::PATH_ENV.into()],
        cmd: vec!["sh".into()],
        working_dir: None,
        labels: BTreeMap::new(),
    }
}

fn platform_doc(p: &Platform) -> PlatformDoc {
    PlatformDoc {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
    }
}

/// The second platform of `multiarch`: `linux/arm64/v8`, or `linux/amd64` when the
/// first is arm64.
pub fn other_platform(first: &Platform) -> Platform {
    if first.architecture == "arm64" {
        Platform::new("linux", "amd64", None)
    } else {
        Platform::new("linux", "arm64", Some("v8"))
    }
}

/// Assembles `kind` in memory.
pub fn assemble(kind: ImageKind, opts: &Options) -> Result<Image> {
    let mut blobs = Blobs::default();
    let busybox = contents::busybox_layer(&opts.busybox)?;
    let base = blobs.layer(&busybox, media::OCI_LAYER_GZIP)?;
    let base_by = "busybox layer (bin/busybox, applets, etc/passwd, etc/group)";
    let manifests = match kind {
        ImageKind::Busybox => {
            vec![blobs.image(&opts.platform, vec![(base, base_by)], busybox_run())?]
        }
        ImageKind::Layers => {
            let l2 = blobs.layer(&contents::layer2(), media::OCI_LAYER_GZIP)?;
            let l3 = blobs.layer(&contents::layer3(), media::OCI_LAYER_ZSTD)?;
            let l4 = blobs.layer(&contents::layer4(), media::OCI_LAYER_TAR)?;
            let mut run = busybox_run();
            run.working_dir = Some("/data".into());
            run.labels
                .insert("berth.test.image".into(), "layers".into());
            vec![blobs.image(
                &opts.platform,
                vec![
                    (base, base_by),
                    (l2, "files, a hard link, symlinks (gzip)"),
                    (l3, "whiteouts, an opaque directory, a modified file (zstd)"),
                    (l4, "setuid file, xattr, fifo (plain tar)"),
                ],
                run,
            )?]
        }
        ImageKind::Multiarch => {
            let other = other_platform(&opts.platform);
            vec![
                blobs.image(&opts.platform, vec![(base.clone(), base_by)], busybox_run())?,
                blobs.image(&other, vec![(base, base_by)], busybox_run())?,
            ]
        }
    };
    let (media_type, digest, size) = if kind == ImageKind::Multiarch {
        let platforms = [opts.platform.clone(), other_platform(&opts.platform)];
        let index = IndexDoc {
            schema_version: 2,
            media_type: media::OCI_INDEX.into(),
            manifests: manifests
                .iter()
                .zip(&platforms)
                .map(|(m, p)| DescriptorDoc {
                    media_type: media::OCI_MANIFEST.into(),
                    digest: m.digest.to_string(),
                    size: m.size,
                    platform: Some(platform_doc(p)),
                    annotations: BTreeMap::new(),
                })
                .collect(),
        };
        let (d, s) = blobs.add(json(&index)?)?;
        (media::OCI_INDEX, d, s)
    } else {
        (
            media::OCI_MANIFEST,
            manifests[0].digest.clone(),
            manifests[0].size,
        )
    };
    Ok(Image {
        kind,
        media_type,
        digest,
        size,
        manifests,
        blobs: blobs.blobs,
        tars: blobs.tars,
    })
}

/// The platform of the first image as the top-level descriptor states it (none for an
/// index).
fn top_platform(image: &Image) -> Result<Option<PlatformDoc>> {
    if image.media_type == media::OCI_INDEX {
        return Ok(None);
    }
    let p = Platform::parse(&image.manifests[0].platform)
        .with_context(|| format!("platform {}", image.manifests[0].platform))?;
    Ok(Some(platform_doc(&p)))
}
