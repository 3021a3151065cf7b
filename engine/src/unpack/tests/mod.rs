//! Unpacker tests. They create device nodes, chown and set `trusted.*` attributes,
//! so they need root (as the daemon does).

mod hostile;
mod layers;
mod stream;
mod whiteouts;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use super::{apply_layer, Applied, ApplyOptions, Compression, WhiteoutMode};
use crate::ids::Digest;
use crate::Result;

/// The mtime given to test entries unless a test sets one.
const MTIME: u64 = 1_600_000_000;

/// A layer built in memory.
pub(super) struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub(super) fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    pub(super) fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, mode);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(super) fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = Self::header(EntryType::Regular, 0o644);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A file with the given owner, mode and mtime.
    pub(super) fn file_with(
        mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> Self {
        let mut h = Self::header(EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A directory with the given owner, mode and mtime.
    pub(super) fn dir_with(
        mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> Self {
        let mut h = Self::header(EntryType::Directory, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(super) fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Symlink, 0o777);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, 0o644);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(super) fn node(
        mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Self {
        let mut h = Self::header(kind, mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// PAX records for the next entry.
    pub(super) fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry with a forged name and link name, as hostile tools write them (the
    /// builder's own setters refuse `..` and absolute paths).
    pub(super) fn raw(mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        let mut h = Self::header(kind, 0o644);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// The tar stream, with its end-of-archive marker.
    pub(super) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }

    /// The tar stream without the end-of-archive marker.
    pub(super) fn unterminated(self) -> Vec<u8> {
        self.b.get_ref().clone()
    }
}

pub(super) fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(tar).unwrap();
    enc.finish().unwrap()
}

pub(super) fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(tar, 3).unwrap()
}

pub(super) fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(bytes))
}

/// Applies an uncompressed layer.
pub(super) fn apply(tar: &[u8], root: &Path, mode: WhiteoutMode) -> Result<Applied> {
    apply_layer(tar, Compression::None, root, mode, &ApplyOptions::default())
}

/// Everything under `dir` (not following symlinks), described for comparison:
/// type, mode, owner, size, mtime, link target and a hash of the content.
pub(super) fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let extra = if md.file_type().is_symlink() {
                format!("-> {:?}", std::fs::read_link(&p).unwrap())
            } else if md.is_file() {
                sha256(&std::fs::read(&p).unwrap()).to_string()
            } else {
                String::new()
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            out.insert(
                rel,
                format!(
                    "{:o} {}:{} {} {} {} {extra}",
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.size(),
                    md.mtime(),
                    md.nlink()
                ),
            );
        }
    }
    out
}

/// The names directly in `dir`, sorted.
pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| String::from_utf8_lossy(e.unwrap().file_name().as_bytes()).into_owned())
        .collect();
    v.sort();
    v
}

pub(super) fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
