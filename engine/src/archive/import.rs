//! The streaming pass of [`import`]: one sequential read of the tar, every blob into
//! the content store as it passes, the small documents kept in memory.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::io::{self, Read, Write};
use std::path::Path;

use tar::EntryType;

use super::{invalid, normalise, resolve, BlobEvent, ImportOptions, Imported};
use super::{IMAGE_LAYOUT_VERSION, MAX_DOCUMENT_SIZE};
use crate::content::{Committed, Expected, IngestManager, Ingester, LocalStore, Provider, Writer};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// How many bytes after the end-of-archive marker are read (and ignored) so a streamed
/// request body is consumed.
const MAX_TRAILER: u64 = 1 << 20;

/// Imports an OCI image-layout archive or a `docker save` archive from `reader` into
/// `store` (see the [module documentation](super) for the formats, the naming rules and
/// what a failure leaves behind).
///
/// The tar is read once, front to back. Each blob is written through an ingest whose
/// ref starts with [`ImportOptions::ingest_prefix`]; `on_blob` is told
/// [`BlobEvent::Committing`] before the blob can appear in the store (so the caller can
/// add it to a lease) and [`BlobEvent::Committed`] once it is there (so the caller can
/// journal it). An error from `on_blob` stops the import and is returned as it is.
/// No image record is created: the caller does that with [`Imported::images`].
pub fn import<R: Read>(
    reader: R,
    store: &LocalStore,
    opts: ImportOptions,
    on_blob: &mut dyn FnMut(BlobEvent) -> Result<()>,
) -> Result<Imported> {
    let mut sink = Sink {
        store,
        prefix: &opts.ingest_prefix,
        on_blob,
        blobs: Vec::new(),
        seen: HashSet::new(),
    };
    let scanned = scan(reader, &mut sink)?;
    let (images, manifests) = resolve::resolve(&opts, &scanned, &mut sink)?;
    Ok(Imported {
        images,
        blobs: sink.blobs,
        manifests,
    })
}

/// What the streaming pass found.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    /// An `oci-layout` file was present (and valid).
    pub oci_layout: bool,
    /// A `blobs/` entry was present.
    pub blobs_dir: bool,
    /// The bytes of `index.json`.
    pub index_json: Option<Vec<u8>>,
    /// The bytes of `manifest.json`.
    pub manifest_json: Option<Vec<u8>>,
    /// Every ingested file: normalised path → digest and size.
    pub files: BTreeMap<String, (Digest, u64)>,
    /// Links to layer files (docker archives): normalised path → normalised target.
    pub links: BTreeMap<String, String>,
}

/// Writes blobs into the store with the [`BlobEvent`] protocol and records them.
pub(super) struct Sink<'a> {
    pub store: &'a LocalStore,
    prefix: &'a str,
    on_blob: &'a mut dyn FnMut(BlobEvent) -> Result<()>,
    /// Every blob reported committed, in order, each once.
    pub blobs: Vec<Digest>,
    seen: HashSet<Digest>,
}

impl Sink<'_> {
    /// Writes a blob whose digest is known before writing. `shown` names it in errors.
    fn known(&mut self, src: &mut dyn Read, shown: &str, digest: &Digest, size: u64) -> Result<()> {
        (self.on_blob)(BlobEvent::Committing {
            digest: digest.clone(),
            size,
        })?;
        let reference = format!("{}-{digest}", self.prefix);
        let expected = Expected {
            digest: digest.clone(),
            size,
        };
        let writer = match self.store.writer(&reference, Some(expected)) {
            Ok(w) => w,
            Err(EngineError::AlreadyExists { .. }) => {
                // The store has it: the archive's bytes are not needed.
                let size = self.store.info(digest)?.size;
                return self.committed(digest, size, false);
            }
            Err(e) => return Err(e),
        };
        let committed = self.write(writer, src, shown, size, Some(digest))?;
        self.committed(digest, size, committed.created())
    }

    /// Writes a blob whose digest is learnt while writing; returns it.
    fn unknown(&mut self, src: &mut dyn Read, shown: &str, size: u64, n: u64) -> Result<Digest> {
        let reference = format!("{}-entry-{n}", self.prefix);
        let writer = self.store.writer(&reference, None)?;
        let committed = self.write(writer, src, shown, size, None)?;
        let digest = committed.digest().clone();
        self.committed(&digest, size, committed.created())?;
        Ok(digest)
    }

    /// Writes an in-memory blob (a synthesized manifest); returns its digest.
    pub fn bytes(&mut self, bytes: &[u8], shown: &str) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        let mut src = bytes;
        self.known(&mut src, shown, &digest, len64(bytes.len()))?;
        Ok(digest)
    }

    /// Copies `size` bytes from `src` into `writer` and commits; aborts the ingest on
    /// any failure, so none is left behind.
    fn write(
        &mut self,
        writer: Writer,
        src: &mut dyn Read,
        shown: &str,
        size: u64,
        digest: Option<&Digest>,
    ) -> Result<Committed> {
        let reference = writer.reference().to_string();
        let result = self.write_inner(writer, src, shown, size, digest);
        if result.is_err() {
            // The writer is dropped (its lock released) by now.
            match self.store.abort(&reference) {
                Ok(()) | Err(EngineError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(reference, error = %e, "could not abort the ingest of a failed import");
                }
            }
        }
        result
    }

    fn write_inner(
        &mut self,
        mut writer: Writer,
        src: &mut dyn Read,
        shown: &str,
        size: u64,
        digest: Option<&Digest>,
    ) -> Result<Committed> {
        if writer.offset() > 0 {
            // Left by an earlier attempt with this ref: the stream starts over.
            writer.truncate(0)?;
        }
        copy_exact(src, &mut writer, shown, size)?;
        let digest = match digest {
            Some(d) => d.clone(),
            None => {
                let d = writer.digest();
                (self.on_blob)(BlobEvent::Committing {
                    digest: d.clone(),
                    size,
                })?;
                d
            }
        };
        writer
            .commit(Some(size), Some(&digest))
            .map_err(|e| match e {
                EngineError::InvalidArgument(msg) => invalid(format!(
                    "archive entry {shown}: its content does not match its digest ({msg})"
                )),
                other => other,
            })
    }

    fn committed(&mut self, digest: &Digest, size: u64, created: bool) -> Result<()> {
        (self.on_blob)(BlobEvent::Committed {
            digest: digest.clone(),
            size,
            created,
        })?;
        if self.seen.insert(digest.clone()) {
            self.blobs.push(digest.clone());
        }
        Ok(())
    }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The error of a stream that ends early or does not parse as a tar.
pub(super) fn corrupt(detail: impl Display) -> EngineError {
    invalid(format!(
        "archive is truncated or corrupt: {}",
        readable(&detail.to_string())
    ))
}

/// The tar parser quotes raw header bytes in some errors: keep a message one readable
/// line (control and undecodable characters become `?`; at most 200 characters).
fn readable(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_control() || c == '\u{fffd}' {
                '?'
            } else {
                c
            }
        })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// The error of an entry header that does not parse; the first one failing means the
/// input is not a tar at all (the parser's own words would quote its bytes).
fn bad_header(n: u64, e: io::Error) -> EngineError {
    if n == 0 && e.kind() != io::ErrorKind::UnexpectedEof {
        return corrupt("the data is not a tar archive (its first header does not parse)");
    }
    corrupt(e)
}

/// Copies exactly `size` bytes; fewer means the archive is cut short.
fn copy_exact(src: &mut dyn Read, dst: &mut Writer, shown: &str, size: u64) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < size {
        let want = usize::try_from(size - done).map_or(buf.len(), |r| r.min(buf.len()));
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(corrupt(format!(
                    "entry {shown} ends after {done} of its {size} bytes"
                )))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(format!("entry {shown}: {e}"))),
        };
        dst.write_all(&buf[..n]).map_err(|e| {
            let msg = format!("write ingest {:?}: {e}", dst.reference());
            match e.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT) => EngineError::Unavailable(msg),
                _ => EngineError::Internal(msg),
            }
        })?;
        done += len64(n);
    }
    Ok(())
}

/// Reads a small document entry into memory.
fn read_document(src: &mut dyn Read, shown: &str, size: u64) -> Result<Vec<u8>> {
    if size > MAX_DOCUMENT_SIZE {
        return Err(invalid(format!(
            "archive entry {shown} is {size} bytes; the limit is {MAX_DOCUMENT_SIZE}"
        )));
    }
    let mut bytes = Vec::new();
    src.take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(format!("entry {shown}: {e}")))?;
    if len64(bytes.len()) != size {
        return Err(corrupt(format!(
            "entry {shown} ends after {} of its {size} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A reader that remembers whether it reached the end of its input.
struct Tracked<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// The streaming pass.
fn scan<R: Read>(reader: R, sink: &mut Sink<'_>) -> Result<Scanned> {
    let mut scanned = Scanned::default();
    let mut archive = tar::Archive::new(Tracked {
        inner: reader,
        eof: false,
    });
    {
        let entries = archive.entries().map_err(corrupt)?;
        for (n, entry) in (0u64..).zip(entries) {
            let mut entry = entry.map_err(|e| bad_header(n, e))?;
            let path = entry.path().map_err(corrupt)?.into_owned();
            let parts = normalise(&path)?;
            let kind = entry.header().entry_type();
            let link = match kind {
                EntryType::Symlink | EntryType::Link => Some(
                    entry
                        .link_name()
                        .map_err(corrupt)?
                        .map(|l| l.into_owned())
                        .ok_or_else(|| {
                            invalid(format!(
                                "archive entry {}: link without a target",
                                path.display()
                            ))
                        })?,
                ),
                _ => None,
            };
            let size = entry.size();
            scan_entry(
                &mut scanned,
                sink,
                &mut entry,
                n,
                &parts,
                kind,
                link.as_deref(),
                size,
            )?;
        }
    }
    let mut tracked = archive.into_inner();
    if tracked.eof {
        // tar stops at the end-of-archive marker; reaching the end of the input first
        // means the archive was cut (at an entry boundary).
        return Err(corrupt("the end-of-archive marker is missing"));
    }
    // Consume the rest of the marker and the record padding (bounded).
    let _ = io::copy(&mut (&mut tracked).take(MAX_TRAILER), &mut io::sink());
    Ok(scanned)
}

/// Handles one entry.
#[allow(clippy::too_many_arguments)]
fn scan_entry(
    scanned: &mut Scanned,
    sink: &mut Sink<'_>,
    src: &mut dyn Read,
    n: u64,
    parts: &[String],
    kind: EntryType,
    link: Option<&Path>,
    size: u64,
) -> Result<()> {
    let shown = parts.join("/");
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    let unexpected = || {
        invalid(format!(
            "unexpected archive entry {shown:?}: not part of an OCI image layout or a docker save archive"
        ))
    };
    match kind {
        EntryType::XGlobalHeader => Ok(()),
        EntryType::Directory => match p.as_slice() {
            [] => Ok(()),
            ["blobs"] => {
                scanned.blobs_dir = true;
                Ok(())
            }
            ["blobs", "sha256"] => Ok(()),
            ["blobs", alg] => Err(unsupported_algorithm(&shown, alg)),
            // A docker layer directory (`<id>/`).
            [_] => Ok(()),
            _ => Err(unexpected()),
        },
        EntryType::Regular | EntryType::Continuous => match p.as_slice() {
            ["oci-layout"] => {
                let bytes = read_document(src, &shown, size)?;
                check_layout(&bytes)?;
                scanned.oci_layout = true;
                Ok(())
            }
            ["index.json"] => {
                once(&scanned.index_json, &shown)?;
                scanned.index_json = Some(read_document(src, &shown, size)?);
                Ok(())
            }
            ["manifest.json"] => {
                once(&scanned.manifest_json, &shown)?;
                scanned.manifest_json = Some(read_document(src, &shown, size)?);
                Ok(())
            }
            ["repositories"] | [_, "json" | "VERSION"] => Ok(()),
            ["blobs", "sha256", hex] => {
                let digest = Digest::parse(&format!("sha256:{hex}")).map_err(|_| {
                    invalid(format!(
                        "archive entry {shown:?}: {hex:?} is not a sha256 digest (64 lower-case hex digits)"
                    ))
                })?;
                sink.known(src, &shown, &digest, size)?;
                scanned.blobs_dir = true;
                scanned.files.insert(shown.clone(), (digest, size));
                Ok(())
            }
            ["blobs", alg, _] => Err(unsupported_algorithm(&shown, alg)),
            // docker save: `<hex>.json` configs; containers/image: `<hex>.tar` layers;
            // docker: `<id>/layer.tar` layers.
            [name] if name.ends_with(".json") || name.ends_with(".tar") => {
                let digest = sink.unknown(src, &shown, size, n)?;
                scanned.files.insert(shown.clone(), (digest, size));
                Ok(())
            }
            [_, "layer.tar"] => {
                let digest = sink.unknown(src, &shown, size, n)?;
                scanned.files.insert(shown.clone(), (digest, size));
                Ok(())
            }
            _ => Err(unexpected()),
        },
        EntryType::Symlink | EntryType::Link => match p.as_slice() {
            [_, "json" | "VERSION"] => Ok(()),
            [_, "layer.tar"] | [_] if shown.ends_with(".tar") => {
                let Some(link) = link else {
                    return Err(unexpected());
                };
                let base: &[String] = if kind == EntryType::Symlink {
                    &parts[..parts.len() - 1]
                } else {
                    &[]
                };
                let target = link_target(base, link, &shown)?;
                scanned.links.insert(shown.clone(), target);
                Ok(())
            }
            _ => Err(invalid(format!(
                "archive entry {shown:?} is a link; links are allowed only for docker layers (layer.tar)"
            ))),
        },
        other => Err(invalid(format!(
            "archive entry {shown:?} has type {other:?}; image archives hold only files and directories"
        ))),
    }
}

fn unsupported_algorithm(shown: &str, alg: &str) -> EngineError {
    invalid(format!(
        "archive entry {shown:?}: digest algorithm {alg:?} is not supported; only sha256 is"
    ))
}

fn once(slot: &Option<Vec<u8>>, shown: &str) -> Result<()> {
    if slot.is_some() {
        return Err(invalid(format!("archive has more than one {shown}")));
    }
    Ok(())
}

fn check_layout(bytes: &[u8]) -> Result<()> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("oci-layout is not valid JSON: {e}")))?;
    match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(IMAGE_LAYOUT_VERSION) => Ok(()),
        Some(v) => Err(invalid(format!(
            "oci-layout: imageLayoutVersion {v:?} is not supported (expected {IMAGE_LAYOUT_VERSION:?})"
        ))),
        None => Err(invalid("oci-layout has no imageLayoutVersion")),
    }
}

/// Resolves a link target against the directory `base` (a symlink's parent; the root
/// for a hard link), staying inside the archive.
fn link_target(base: &[String], target: &Path, shown: &str) -> Result<String> {
    use std::path::Component;
    let mut parts: Vec<String> = base.to_vec();
    for c in target.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(invalid(format!(
                        "archive entry {shown:?} links outside the archive"
                    )));
                }
            }
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s.to_string()),
                None => {
                    return Err(invalid(format!(
                        "archive entry {shown:?}: link target is not UTF-8"
                    )))
                }
            },
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!(
                    "archive entry {shown:?} links to an absolute path"
                )))
            }
        }
    }
    Ok(parts.join("/"))
}
