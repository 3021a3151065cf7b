//! The native (copying) snapshotter: the fallback where overlayfs is unavailable.
//!
//! Layout: `snapshots/<id>/` is the snapshot's whole filesystem. Preparing over a parent
//! copies the parent (modes, owners, times, xattrs, symlinks, device nodes and hard
//! links preserved); mounts are bind mounts (read-only for views and committed ones).
//! A view is a copy too, so it stays valid whatever happens to its parent.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::{
    create_storage, io_err, numeric_dirs, remove_tree, Kind, SnapshotId, Snapshotter, Usage,
};
use crate::mount::Mount;
use crate::unpack::WhiteoutMode;
use crate::EngineError;

/// The native snapshotter.
#[derive(Debug, Clone)]
pub struct Native {
    root: PathBuf,
}

impl Native {
    /// A snapshotter storing under `root` (e.g. `<berth root>/snapshots/native`).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let root = root.into();
        let snaps = root.join("snapshots");
        std::fs::create_dir_all(&snaps).map_err(io_err("creating", &snaps))?;
        Ok(Native { root })
    }

    fn dir(&self, id: SnapshotId) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// The directory holding snapshot `id`'s filesystem.
    pub fn upper(&self, id: SnapshotId) -> PathBuf {
        self.dir(id)
    }

    fn create(&self, id: SnapshotId, parent: Option<SnapshotId>) -> Result<(), EngineError> {
        create_storage(&self.root.join("snapshots"), id, |tmp| match parent {
            Some(p) => {
                let src = self.dir(p);
                if !src.is_dir() {
                    return Err(EngineError::NotFound {
                        kind: "parent snapshot storage",
                        id: p.to_string(),
                    });
                }
                copy_tree(&src, tmp)
            }
            None => {
                std::fs::create_dir_all(tmp).map_err(io_err("creating", tmp))?;
                std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod", tmp))
            }
        })
    }
}

impl Snapshotter for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn prepare(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError> {
        self.create(id, parents.first().copied())?;
        self.mounts(id, Kind::Active, parents)
    }

    fn view(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError> {
        let Some(parent) = parents.first() else {
            return Err(EngineError::InvalidArgument(
                "a view needs at least one parent".into(),
            ));
        };
        self.create(id, Some(*parent))?;
        self.mounts(id, Kind::View, parents)
    }

    fn commit(&self, id: SnapshotId) -> Result<(), EngineError> {
        if !self.dir(id).is_dir() {
            return Err(EngineError::NotFound {
                kind: "snapshot storage",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    fn mounts(
        &self,
        id: SnapshotId,
        kind: Kind,
        _parents: &[SnapshotId],
    ) -> Result<Vec<Mount>, EngineError> {
        Ok(vec![Mount::bind(&self.dir(id), kind != Kind::Active)])
    }

    fn remove(&self, id: SnapshotId) -> Result<(), EngineError> {
        remove_tree(&self.dir(id))
    }

    fn usage(&self, id: SnapshotId) -> Result<Usage, EngineError> {
        super::disk_usage(&self.dir(id))
    }

    fn walk(&self) -> Result<Vec<SnapshotId>, EngineError> {
        numeric_dirs(&self.root.join("snapshots"))
    }

    fn layer_dir(&self, id: SnapshotId) -> (PathBuf, WhiteoutMode) {
        (self.dir(id), WhiteoutMode::Native)
    }
}

fn nix_err(what: &str, path: &Path) -> impl FnOnce(nix::Error) -> EngineError {
    let msg = format!("{what} {}", path.display());
    move |e| EngineError::Internal(format!("{msg}: {e}"))
}

/// Copies a tree preserving everything a container filesystem needs: file contents,
/// modes (with setuid/setgid/sticky), owners, access and modification times, extended
/// attributes, symlinks, device nodes, fifos and hard links (within the tree). Does not
/// cross mount points.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), EngineError> {
    let top = std::fs::symlink_metadata(src).map_err(io_err("reading", src))?;
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    copy_entry(src, dst, top.dev(), &mut links, &mut dirs)?;
    // Directory times last, once their contents stopped changing.
    for (path, meta) in dirs.iter().rev() {
        set_times(path, meta)?;
    }
    Ok(())
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    dev: u64,
    links: &mut HashMap<(u64, u64), PathBuf>,
    dirs: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> Result<(), EngineError> {
    let meta = std::fs::symlink_metadata(src).map_err(io_err("reading", src))?;
    let ft = meta.file_type();
    if !ft.is_dir() && meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            return std::fs::hard_link(first, dst).map_err(io_err("linking", dst));
        }
        links.insert((meta.dev(), meta.ino()), dst.to_path_buf());
    }
    if ft.is_dir() {
        std::fs::create_dir(dst).map_err(io_err("creating", dst))?;
        if meta.dev() == dev {
            for entry in std::fs::read_dir(src).map_err(io_err("reading", src))? {
                let entry = entry.map_err(io_err("reading", src))?;
                let name = entry.file_name();
                copy_entry(&src.join(&name), &dst.join(&name), dev, links, dirs)?;
            }
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(io_err("reading link", src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(io_err("creating symlink", dst))?;
    } else if ft.is_file() {
        std::fs::copy(src, dst).map_err(io_err("copying", src))?;
    } else {
        let kind = if ft.is_char_device() {
            SFlag::S_IFCHR
        } else if ft.is_block_device() {
            SFlag::S_IFBLK
        } else if ft.is_fifo() {
            SFlag::S_IFIFO
        } else {
            SFlag::S_IFSOCK
        };
        nix::sys::stat::mknod(
            dst,
            kind,
            Mode::from_bits_truncate(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(nix_err("mknod", dst))?;
    }
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        dst,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(nix_err("chown", dst))?;
    copy_xattrs(src, dst)?;
    if !ft.is_symlink() {
        // chmod after chown: chown clears setuid/setgid bits.
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err("chmod", dst))?;
    }
    if ft.is_dir() {
        dirs.push((dst.to_path_buf(), meta));
    } else {
        set_times(dst, &meta)?;
    }
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), EngineError> {
    let names = match xattr::list(src) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(io_err("listing xattrs of", src)(e)),
    };
    for name in names {
        if let Some(value) = xattr::get(src, &name).map_err(io_err("reading xattrs of", src))? {
            set_xattr(dst, &name, &value)?;
        }
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &OsStr, value: &[u8]) -> Result<(), EngineError> {
    xattr::set(path, name, value).map_err(io_err("setting xattrs of", path))
}

fn set_times(path: &Path, meta: &std::fs::Metadata) -> Result<(), EngineError> {
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(nix_err("setting times of", path))
}
