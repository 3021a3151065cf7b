//! Deterministic tar, gzip and zstd: the same entries always give the same bytes.
//!
//! Entries are written sorted by path (a directory therefore precedes its contents),
//! as ustar headers with uid/gid 0, no user or group names, mtime [`EPOCH`], the mode
//! given and no atime/ctime; extended attributes go into a PAX header (`x`) holding
//! only `SCHILY.xattr.*` records. gzip has no name and mtime 0 at a fixed level, zstd a
//! fixed level on one thread.

use std::io::Write;

use anyhow::{Context, Result};
use tar::{EntryType, Header};

/// The fixed timestamp of every entry and of the configs: 2024-01-01T00:00:00Z.
pub const EPOCH: u64 = 1_704_067_200;
/// [`EPOCH`] as RFC 3339.
pub const CREATED: &str = "2024-01-01T00:00:00Z";
/// gzip level of every gzip layer.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level of every zstd layer.
pub const ZSTD_LEVEL: i32 = 3;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits (setuid etc. included).
        mode: u32,
        /// Content.
        data: Vec<u8>,
        /// Extended attributes (name, value), written as PAX `SCHILY.xattr.<name>`.
        xattrs: Vec<(String, Vec<u8>)>,
    },
    /// A symbolic link.
    Symlink {
        /// Link target, as stored.
        target: String,
    },
    /// A hard link to an earlier entry of the same tar.
    Hardlink {
        /// Path of the entry linked to.
        target: String,
    },
    /// A named pipe.
    Fifo {
        /// Permission bits.
        mode: u32,
    },
}

/// One tar entry: a relative path (no leading `/`, no trailing `/`) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path.
    pub path: String,
    /// What it is.
    pub node: Node,
}

impl Entry {
    /// A directory.
    pub fn dir(path: &str, mode: u32) -> Self {
        Entry {
            path: path.into(),
            node: Node::Dir { mode },
        }
    }

    /// A regular file.
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            node: Node::File {
                mode,
                data: data.into(),
                xattrs: Vec::new(),
            },
        }
    }

    /// A symlink.
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry {
            path: path.into(),
            node: Node::Symlink {
                target: target.into(),
            },
        }
    }

    /// A hard link.
    pub fn hardlink(path: &str, target: &str) -> Self {
        Entry {
            path: path.into(),
            node: Node::Hardlink {
                target: target.into(),
            },
        }
    }

    /// A fifo.
    pub fn fifo(path: &str, mode: u32) -> Self {
        Entry {
            path: path.into(),
            node: Node::Fifo { mode },
        }
    }
}

fn base_header(path: &str, ty: EntryType, mode: u32, size: u64) -> Result<Header> {
    let mut h = Header::new_ustar();
    h.set_path(path)
        .with_context(|| format!("tar path {path:?}"))?;
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(EPOCH);
    h.set_size(size);
    Ok(h)
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    debug_assert_eq!(rec.len(), len);
    rec
}

/// Writes `entries` as a tar, sorted by path.
pub fn tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(w) = sorted.windows(2).find(|w| w[0].path == w[1].path) {
        anyhow::bail!("tar entry {:?} appears twice", w[0].path);
    }
    let mut b = tar::Builder::new(Vec::new());
    for e in sorted {
        match &e.node {
            Node::Dir { mode } => {
                let mut h = base_header(&format!("{}/", e.path), EntryType::Directory, *mode, 0)?;
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
            Node::File { mode, data, xattrs } => {
                if !xattrs.is_empty() {
                    let mut records = Vec::new();
                    for (name, value) in xattrs {
                        records.extend(pax_record(&format!("SCHILY.xattr.{name}"), value));
                    }
                    let (dir, file) = match e.path.rsplit_once('/') {
                        Some((d, f)) => (format!("{d}/"), f),
                        None => (String::new(), e.path.as_str()),
                    };
                    let pax_path = format!("{dir}PaxHeaders.0/{file}");
                    let size = u64::try_from(records.len())?;
                    let mut h = base_header(&pax_path, EntryType::XHeader, 0o644, size)?;
                    h.set_cksum();
                    b.append(&h, records.as_slice())?;
                }
                let size = u64::try_from(data.len())?;
                let mut h = base_header(&e.path, EntryType::Regular, *mode, size)?;
                h.set_cksum();
                b.append(&h, data.as_slice())?;
            }
            Node::Symlink { target } | Node::Hardlink { target } => {
                let ty = if matches!(e.node, Node::Symlink { .. }) {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                };
                let mode = if ty == EntryType::Symlink {
                    0o777
                } else {
                    0o644
                };
                let mut h = base_header(&e.path, ty, mode, 0)?;
                h.set_link_name(target)
                    .with_context(|| format!("link target {target:?}"))?;
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
            Node::Fifo { mode } => {
                let mut h = base_header(&e.path, EntryType::Fifo, *mode, 0)?;
                h.set_cksum();
                b.append(&h, std::io::empty())?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// gzip without file name or mtime, at [`GZIP_LEVEL`].
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// zstd at [`ZSTD_LEVEL`], one frame.
pub fn zstd(data: &[u8]) -> Result<Vec<u8>> {
    Ok(zstd::stream::encode_all(data, ZSTD_LEVEL)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths() {
        for (k, v) in [
            ("a", &b""[..]),
            ("SCHILY.xattr.user.berth", b"hello"),
            ("k", &[b'x'; 95][..]),
        ] {
            let r = pax_record(k, v);
            let (len, _) = std::str::from_utf8(&r).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len());
        }
    }

    #[test]
    fn tar_is_sorted_and_fixed() {
        let entries = vec![
            Entry::file("b", 0o644, "b"),
            Entry::dir("a", 0o755),
            Entry::file("a/x", 0o600, "x"),
        ];
        let t = tar(&entries).unwrap();
        assert_eq!(t, tar(&entries).unwrap());
        let mut ar = tar::Archive::new(t.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), EPOCH);
                assert_eq!(e.header().uid().unwrap(), 0);
                e.path().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(names, ["a/", "a/x", "b"]);
        assert!(tar(&[Entry::dir("a", 0o755), Entry::dir("a", 0o755)]).is_err());
    }

    #[test]
    fn gzip_has_no_mtime_or_name() {
        let g = gzip(b"hello").unwrap();
        assert_eq!(&g[..4], &[0x1f, 0x8b, 8, 0]); // magic, deflate, no flags (no name)
        assert_eq!(&g[4..8], &[0, 0, 0, 0]); // mtime 0
        assert_eq!(g, gzip(b"hello").unwrap());
        assert_eq!(zstd(b"hello").unwrap(), zstd(b"hello").unwrap());
    }
}
