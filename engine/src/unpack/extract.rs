//! Applying tar entries to a snapshot root, one entry at a time, through fds.
//!
//! Every entry's parent directory is opened with `openat2(RESOLVE_IN_ROOT)` (see
//! [`super::fs`]) and the entry itself is made with a `*at` call on that fd using its
//! last name component only, which never follows a symlink. So no entry lands outside
//! the root: `..` is refused outright, absolute names and symlinks (to `/`, to a host
//! directory, planted in place of a parent directory) all resolve inside the root,
//! and a hardlink's target is looked up the same way and must exist there.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write as _};
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;
use xattr::FileExt as _;

use super::fs::{
    create_dir_in_root, id_of, kind_at, list, lsetxattr_at, open_dir_beneath, open_dir_in_root, os,
    remove_all_at, reopen_dir, DirId,
};
use super::path::{normalise, show, split_last};
use super::WhiteoutMode;
use crate::EngineError;

/// Size of the buffer file contents are copied through (allocated once per layer).
const COPY_BUF: usize = 1024 * 1024;
/// Name prefix of a whiteout entry.
const WH_PREFIX: &[u8] = b".wh.";
/// Name prefix of whiteout metadata (aufs); only the opaque marker has a meaning.
const WH_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque-directory marker.
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr marking an upper directory opaque.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The directory holding the current entry, kept open while consecutive entries share
/// it (the common case: tar streams list a directory's files together).
struct Parent {
    path: Vec<u8>,
    fd: OwnedFd,
    /// `(st_dev, st_ino)`; only computed in native mode, where it keys `created`.
    id: DirId,
}

/// Metadata of one entry.
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    atime: TimeSpec,
    mtime: TimeSpec,
}

/// A directory's times, applied after all entries (creating children changes them).
struct DirTimes {
    path: Vec<u8>,
    atime: TimeSpec,
    mtime: TimeSpec,
}

/// Applies the entries of one layer to one root.
pub(crate) struct Extractor {
    root: OwnedFd,
    mode: WhiteoutMode,
    buf: Vec<u8>,
    /// The current entry's normalised path (reused).
    path: Vec<u8>,
    /// A hardlink's normalised target (reused).
    target: Vec<u8>,
    parent: Option<Parent>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    dir_times: Vec<DirTimes>,
    /// Native mode: names this layer created or re-declared, per directory. Whiteouts
    /// and opaque markers spare them (they only hide what lower layers put there).
    created: Option<HashMap<DirId, HashSet<Vec<u8>>>>,
    entries: u64,
    warned_unsupported_xattr: bool,
}

impl Extractor {
    pub(crate) fn new(root: OwnedFd, mode: WhiteoutMode) -> Self {
        Extractor {
            root,
            mode,
            buf: vec![0; COPY_BUF],
            path: Vec::with_capacity(256),
            target: Vec::with_capacity(256),
            parent: None,
            xattrs: Vec::new(),
            dir_times: Vec::new(),
            created: (mode == WhiteoutMode::Native).then(HashMap::new),
            entries: 0,
            warned_unsupported_xattr: false,
        }
    }

    /// Tar entries applied so far (whiteouts and entries naming the root included).
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    /// Applies one entry. An entry that would leave the root, or that the root cannot
    /// take, fails the whole layer.
    pub(crate) fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), EngineError> {
        let mut kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            // Metadata for the reader; nothing to create.
            return Ok(());
        }
        self.entries += 1;
        let mut path = mem::take(&mut self.path);
        {
            let raw = entry.path_bytes();
            normalise(&raw, &mut path).map_err(|why| {
                EngineError::InvalidArgument(format!(
                    "layer entry {:?} {}; refusing the layer",
                    show(&raw),
                    why.describe()
                ))
            })?;
            // Pre-POSIX archives mark directories with a trailing slash only.
            if kind == EntryType::Regular && raw.ends_with(b"/") {
                kind = EntryType::Directory;
            }
        }
        if path.is_empty() {
            // The root itself ("./"): its place and metadata belong to the snapshot,
            // not to the layer (containerd ignores it too).
            self.path = path;
            return Ok(());
        }
        let meta = self.meta(entry, &path)?;
        let (parent_path, name) = split_last(&path);
        if name.starts_with(WH_PREFIX) {
            self.whiteout(parent_path, name, &meta, &path)?;
            self.path = path;
            return Ok(());
        }
        let Some(parent) = self.take_parent(parent_path, true, &path)? else {
            return Err(internal(&path, "parent directory vanished"));
        };
        let pfd = parent.fd.as_fd();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(pfd, name, entry, &meta, &path)?;
            }
            EntryType::Directory => self.dir(pfd, name, &meta, &path)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(&path, "symlink without a target"))?;
                self.symlink(pfd, name, &target, &meta, &path)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(&path, "hardlink without a target"))?
                    .into_owned();
                self.hardlink(pfd, name, &target, &path)?;
            }
            EntryType::Fifo => {
                // A fifo has no device number; writers leave those fields blank.
                self.node(pfd, name, SFlag::S_IFIFO, 0, &meta, &path)?;
            }
            EntryType::Char | EntryType::Block => {
                let header = entry.header();
                let bad =
                    |e: io::Error| invalid(&path, &format!("bad device number in header: {e}"));
                let major = header.device_major().map_err(bad)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                self.node(
                    pfd,
                    name,
                    sflag,
                    makedev(major.into(), minor.into()),
                    &meta,
                    &path,
                )?;
            }
            other => {
                return Err(invalid(
                    &path,
                    &format!("unsupported tar entry type {:?}", other.as_byte() as char),
                ));
            }
        }
        self.note_created(&parent, name);
        self.parent = Some(parent);
        self.path = path;
        Ok(())
    }

    /// Applies the directory times collected on the way. Directories replaced or
    /// removed later in the layer are skipped.
    pub(crate) fn finish(&mut self) -> Result<(), EngineError> {
        let times = mem::take(&mut self.dir_times);
        for t in &times {
            let (parent_path, name) = split_last(&t.path);
            let Some(parent) = self.take_parent(parent_path, false, &t.path)? else {
                continue;
            };
            if kind_at(parent.fd.as_fd(), name).map_err(|e| fs_err(&t.path, "stat", e))?
                == Some(SFlag::S_IFDIR)
            {
                utimensat(
                    &parent.fd,
                    os(name),
                    &t.atime,
                    &t.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| fs_err(&t.path, "set times", e))?;
            }
            self.parent = Some(parent);
        }
        Ok(())
    }

    /// Mode, owner, times and (PAX `SCHILY.xattr.*`) extended attributes of an entry;
    /// the attributes go to `self.xattrs`.
    fn meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
    ) -> Result<Meta, EngineError> {
        let header = entry.header();
        let bad = |what: &str, e: io::Error| invalid(path, &format!("bad {what} in header: {e}"));
        let mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let uid = header.uid().map_err(|e| bad("uid", e))?;
        let gid = header.gid().map_err(|e| bad("gid", e))?;
        let uid =
            u32::try_from(uid).map_err(|_| invalid(path, &format!("uid {uid} out of range")))?;
        let gid =
            u32::try_from(gid).map_err(|_| invalid(path, &format!("gid {gid} out of range")))?;
        let secs = header.mtime().map_err(|e| bad("mtime", e))?;
        let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
        let mut atime = None;
        self.xattrs.clear();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| invalid(path, &format!("bad PAX header: {e}")))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| invalid(path, &format!("bad PAX record: {e}")))?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        // These would steer overlayfs (redirects, metacopy, opaque):
                        // only whiteout entries may produce overlay attributes.
                        tracing::warn!(entry = %show(path), xattr = %show(name), "ignoring an overlayfs attribute carried by a layer entry");
                        continue;
                    }
                    self.xattrs
                        .push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if key == b"atime" {
                    atime = parse_pax_time(ext.value_bytes());
                }
            }
        }
        Ok(Meta {
            mode,
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            atime: atime.unwrap_or(mtime),
            mtime,
        })
    }

    /// The directory `path` as a [`Parent`]: the cached one if it is the same,
    /// otherwise resolved in the root; created if missing when `create`, else `None`.
    fn take_parent(
        &mut self,
        path: &[u8],
        create: bool,
        entry: &[u8],
    ) -> Result<Option<Parent>, EngineError> {
        let mut key = Vec::new();
        if let Some(cached) = self.parent.take() {
            if cached.path == path {
                return Ok(Some(cached));
            }
            key = cached.path;
        }
        key.clear();
        key.extend_from_slice(path);
        let root = self.root.as_fd();
        let fd = match open_dir_in_root(root, path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => {
                let created = &mut self.created;
                create_dir_in_root(root, path, |dir, name| {
                    if let Some(created) = created.as_mut() {
                        created
                            .entry(id_of(dir)?)
                            .or_default()
                            .insert(name.to_vec());
                    }
                    Ok(())
                })
                .map_err(|e| parent_err(entry, e))?
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) if !create => return Ok(None),
            Err(e) => return Err(parent_err(entry, e)),
        };
        let id = if self.created.is_some() {
            id_of(fd.as_fd()).map_err(|e| fs_err(entry, "stat parent directory", e))?
        } else {
            (0, 0)
        };
        Ok(Some(Parent { path: key, fd, id }))
    }

    fn note_created(&mut self, parent: &Parent, name: &[u8]) {
        if let Some(created) = self.created.as_mut() {
            let names = created.entry(parent.id).or_default();
            if !names.contains(name) {
                names.insert(name.to_vec());
            }
        }
    }

    fn created_here(&self, dir: DirId, name: &[u8]) -> bool {
        self.created
            .as_ref()
            .and_then(|c| c.get(&dir))
            .is_some_and(|names| names.contains(name))
    }

    fn file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), EngineError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = || openat(parent, os(name), flags, Mode::from_bits_truncate(0o600));
        let fd = replacing(parent, name, create).map_err(|e| fs_err(path, "create file", e))?;
        let mut file = File::from(fd);
        let size = entry.size();
        let mut written: u64 = 0;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_err(path, &e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| match e.raw_os_error() {
                    Some(errno) => fs_err(path, "write", Errno::from_raw(errno)),
                    None => internal(path, &format!("write: {e}")),
                })?;
            written += n as u64;
        }
        if written != size {
            return Err(EngineError::InvalidArgument(format!(
                "layer entry {:?}: stream ended after {written} of its {size} bytes; the layer is truncated",
                show(path)
            )));
        }
        fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(|e| fs_err(path, "chown", e))?;
        // After chown, which clears setuid/setgid.
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(|e| fs_err(path, "chmod", e))?;
        // After chown, which clears security.capability.
        for i in 0..self.xattrs.len() {
            let (key, value) = &self.xattrs[i];
            let r = file.set_xattr(os(key), value);
            self.xattr_result(r, i, path)?;
        }
        futimens(&file, &meta.atime, &meta.mtime).map_err(|e| fs_err(path, "set times", e))?;
        Ok(())
    }

    fn dir(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), EngineError> {
        let mode = Mode::from_bits_truncate(meta.mode & 0o777);
        match mkdirat(parent, os(name), mode) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let kind = kind_at(parent, name).map_err(|e| fs_err(path, "stat", e))?;
                if kind != Some(SFlag::S_IFDIR) {
                    // A file or symlink in the way: a directory entry replaces it
                    // (a symlink is removed, never followed).
                    remove_all_at(parent, name).map_err(|e| fs_err(path, "remove existing", e))?;
                    mkdirat(parent, os(name), mode).map_err(|e| fs_err(path, "mkdir", e))?;
                }
                // An existing directory is kept, with its content; only its
                // metadata changes.
            }
            Err(e) => return Err(fs_err(path, "mkdir", e)),
        }
        // `name` was just made or checked to be a directory: nothing to follow.
        own_and_mode(parent, name, meta, path)?;
        self.xattrs_at(parent, name, path)?;
        self.dir_times.push(DirTimes {
            path: path.to_vec(),
            atime: meta.atime,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), EngineError> {
        // The target is stored as given and never followed here; whatever later
        // resolves through it does so inside the root.
        replacing(parent, name, || symlinkat(os(target), parent, os(name)))
            .map_err(|e| fs_err(path, "symlink", e))?;
        fchownat(
            parent,
            os(name),
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fs_err(path, "chown", e))?;
        self.xattrs_at(parent, name, path)?;
        utimensat(
            parent,
            os(name),
            &meta.atime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| fs_err(path, "set times", e))?;
        Ok(())
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        raw_target: &[u8],
        path: &[u8],
    ) -> Result<(), EngineError> {
        let mut target = mem::take(&mut self.target);
        normalise(raw_target, &mut target).map_err(|why| {
            EngineError::InvalidArgument(format!(
                "layer entry {:?}: hardlink target {:?} {}; refusing the layer",
                show(path),
                show(raw_target),
                why.describe()
            ))
        })?;
        if target.is_empty() {
            return Err(invalid(path, "hardlink to the root directory"));
        }
        if target == path {
            self.target = target;
            return Ok(());
        }
        let missing = || {
            EngineError::InvalidArgument(format!(
                "layer entry {:?}: hardlink target {:?} does not exist inside the snapshot; \
                 refusing to link to anything outside it",
                show(path),
                show(raw_target)
            ))
        };
        let (tparent, tname) = split_last(&target);
        let tfd = match open_dir_in_root(self.root.as_fd(), tparent) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(missing()),
            Err(e) => return Err(parent_err(path, e)),
        };
        // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself.
        let link = || linkat(&tfd, os(tname), parent, os(name), AtFlags::empty());
        match replacing(parent, name, link) {
            Ok(()) => {}
            Err(Errno::ENOENT) => return Err(missing()),
            Err(Errno::EPERM) if kind_at(tfd.as_fd(), tname) == Ok(Some(SFlag::S_IFDIR)) => {
                return Err(invalid(
                    path,
                    &format!("hardlink target {:?} is a directory", show(raw_target)),
                ));
            }
            Err(e) => return Err(fs_err(path, "link", e)),
        }
        self.target = target;
        Ok(())
    }

    fn node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        kind: SFlag,
        dev: u64,
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), EngineError> {
        let perm = Mode::from_bits_truncate(meta.mode & 0o777);
        replacing(parent, name, || mknodat(parent, os(name), kind, perm, dev))
            .map_err(|e| fs_err(path, "mknod", e))?;
        // `name` is the node just made, not a symlink.
        own_and_mode(parent, name, meta, path)?;
        self.xattrs_at(parent, name, path)?;
        utimensat(
            parent,
            os(name),
            &meta.atime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| fs_err(path, "set times", e))?;
        Ok(())
    }

    /// A `.wh.` entry. Overlay: a 0/0 character device (or, for the opaque marker,
    /// `trusted.overlay.opaque=y` on the directory). Native: removal of what lower
    /// layers put there. Either way no `.wh.` file is ever created. What this same
    /// layer creates is never hidden by its own whiteouts (OCI image spec: whiteouts
    /// apply to lower layers only), whichever comes first in the stream.
    fn whiteout(
        &mut self,
        parent_path: &[u8],
        name: &[u8],
        meta: &Meta,
        path: &[u8],
    ) -> Result<(), EngineError> {
        if name == WH_OPAQUE {
            return self.opaque(parent_path, path);
        }
        if name.starts_with(WH_META_PREFIX) {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless here.
            tracing::debug!(entry = %show(path), "skipping aufs whiteout metadata");
            return Ok(());
        }
        let victim = &name[WH_PREFIX.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(invalid(path, "whiteout names no file; refusing the layer"));
        }
        match self.mode {
            WhiteoutMode::Overlay => {
                let Some(parent) = self.take_parent(parent_path, true, path)? else {
                    return Err(internal(path, "parent directory vanished"));
                };
                let pfd = parent.fd.as_fd();
                match mknodat(pfd, os(victim), SFlag::S_IFCHR, Mode::empty(), 0) {
                    Ok(()) => {
                        fchownat(
                            pfd,
                            os(victim),
                            Some(meta.uid),
                            Some(meta.gid),
                            AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| fs_err(path, "chown whiteout", e))?;
                    }
                    // Something of this layer has that name: it stays.
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(fs_err(path, "create whiteout device", e)),
                }
                self.parent = Some(parent);
            }
            WhiteoutMode::Native => {
                // Nothing to hide in a directory that does not exist.
                let Some(parent) = self.take_parent(parent_path, false, path)? else {
                    return Ok(());
                };
                if !self.created_here(parent.id, victim) {
                    remove_all_at(parent.fd.as_fd(), victim)
                        .map_err(|e| fs_err(path, "remove whited-out file", e))?;
                }
                self.parent = Some(parent);
            }
        }
        Ok(())
    }

    /// `dir/.wh..wh..opq`: hide everything lower layers put in `dir`.
    fn opaque(&mut self, dir_path: &[u8], path: &[u8]) -> Result<(), EngineError> {
        match self.mode {
            WhiteoutMode::Overlay => {
                let Some(dir) = self.take_parent(dir_path, true, path)? else {
                    return Err(internal(path, "parent directory vanished"));
                };
                let fd = reopen_dir(dir.fd.as_fd())
                    .map_err(|e| fs_err(path, "open opaque directory", e))?;
                File::from(fd)
                    .set_xattr(OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(|e| internal(path, &format!("set {OVERLAY_OPAQUE_XATTR}: {e}")))?;
                self.parent = Some(dir);
            }
            WhiteoutMode::Native => {
                let Some(dir) = self.take_parent(dir_path, false, path)? else {
                    return Ok(());
                };
                self.clear_lower(dir.fd.as_fd())
                    .map_err(|e| fs_err(path, "empty opaque directory", e))?;
                self.parent = Some(dir);
            }
        }
        Ok(())
    }

    /// Removes from `dir`, recursively, everything this layer did not create: when the
    /// opaque marker follows some of the directory's own entries (the OCI spec only
    /// asks producers to put it first), those entries and their content stay.
    fn clear_lower(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        // Directories to clean, relative to `dir`.
        let mut work: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = work.pop() {
            let fd = open_dir_beneath(dir, &rel)?;
            let id = id_of(fd.as_fd())?;
            let mut d = Dir::from_fd(fd)?;
            for (name, kind) in list(&mut d)? {
                if self.created_here(id, &name) {
                    let is_dir = match kind {
                        Some(Type::Directory) => true,
                        Some(_) => false,
                        None => kind_at(d.as_fd(), &name)? == Some(SFlag::S_IFDIR),
                    };
                    if is_dir {
                        let mut sub = rel.clone();
                        if !sub.is_empty() {
                            sub.push(b'/');
                        }
                        sub.extend_from_slice(&name);
                        work.push(sub);
                    }
                } else {
                    remove_all_at(d.as_fd(), &name)?;
                }
            }
        }
        Ok(())
    }

    /// Sets `self.xattrs` on `parent/name` without following it.
    fn xattrs_at(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
    ) -> Result<(), EngineError> {
        for i in 0..self.xattrs.len() {
            let (key, value) = &self.xattrs[i];
            let r = lsetxattr_at(parent, name, key, value);
            self.xattr_result(r, i, path)?;
        }
        Ok(())
    }

    /// The policy for a failed xattr: a filesystem without support (`EOPNOTSUPP`) and
    /// an LSM refusing `security.*` (`EPERM`) are logged and skipped, as containerd
    /// does; anything else fails the layer. (`trusted.overlay.*` and `user.overlay.*`
    /// from layer content never get here: [`Self::meta`] drops them.)
    fn xattr_result(
        &mut self,
        r: io::Result<()>,
        i: usize,
        path: &[u8],
    ) -> Result<(), EngineError> {
        let key = &self.xattrs[i].0;
        let Err(e) = r else { return Ok(()) };
        let errno = e.raw_os_error();
        if errno == Some(libc::EOPNOTSUPP)
            || (errno == Some(libc::EPERM) && key.starts_with(b"security."))
        {
            if !self.warned_unsupported_xattr {
                self.warned_unsupported_xattr = true;
                tracing::warn!(entry = %show(path), xattr = %show(key), error = %e, "skipping an extended attribute the snapshot filesystem refuses (warned once per layer)");
            }
            return Ok(());
        }
        Err(internal(path, &format!("set xattr {:?}: {e}", show(key))))
    }
}

/// Runs `create`; if the name is taken, removes what is there (recursively for a
/// directory, never following a symlink) and runs it again.
fn replacing<T>(
    parent: BorrowedFd<'_>,
    name: &[u8],
    mut create: impl FnMut() -> nix::Result<T>,
) -> nix::Result<T> {
    match create() {
        Err(Errno::EEXIST) => {
            remove_all_at(parent, name)?;
            create()
        }
        r => r,
    }
}

/// A PAX time: `[-]seconds[.fraction]`.
fn parse_pax_time(raw: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(raw).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let negative = int.starts_with('-');
    let mut secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + i64::from(b - b'0');
    }
    if negative && nanos > 0 {
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(TimeSpec::new(secs, nanos))
}

fn invalid(path: &[u8], msg: &str) -> EngineError {
    EngineError::InvalidArgument(format!("layer entry {:?}: {msg}", show(path)))
}

fn internal(path: &[u8], msg: &str) -> EngineError {
    EngineError::Internal(format!("layer entry {:?}: {msg}", show(path)))
}

/// A failed syscall while applying an entry: the layer's fault when the tree it built
/// cannot take the entry, ours (or the disk's) otherwise.
fn fs_err(path: &[u8], op: &str, e: Errno) -> EngineError {
    let msg = format!("layer entry {:?}: {op}: {}", show(path), e.desc());
    match e {
        Errno::ENOTDIR | Errno::ELOOP | Errno::ENAMETOOLONG | Errno::EINVAL | Errno::EMLINK => {
            EngineError::InvalidArgument(msg)
        }
        Errno::ENOSPC | Errno::EDQUOT => EngineError::Unavailable(msg),
        _ => EngineError::Internal(msg),
    }
}

fn parent_err(path: &[u8], e: Errno) -> EngineError {
    match e {
        Errno::ENOTDIR => invalid(path, "a parent directory is not a directory"),
        Errno::ELOOP => invalid(
            path,
            "too many levels of symbolic links in its parent directories",
        ),
        Errno::ENOSYS => EngineError::Unavailable(
            "openat2(2) is not available; unpacking layers needs Linux 5.6 or later".into(),
        ),
        e => fs_err(path, "open parent directory", e),
    }
}

/// An error reading an entry's data from the tar stream.
pub(crate) fn stream_err(path: &[u8], e: &io::Error) -> EngineError {
    EngineError::InvalidArgument(format!(
        "layer entry {:?}: reading its data failed: {e}; the layer is corrupt or truncated",
        show(path)
    ))
}

/// Sets owner, then mode (chown clears setuid/setgid, so the mode goes second) of
/// `name` in `parent`, which the caller knows is not a symlink.
fn own_and_mode(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    path: &[u8],
) -> Result<(), EngineError> {
    fchownat(
        parent,
        os(name),
        Some(meta.uid),
        Some(meta.gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| fs_err(path, "chown", e))?;
    fchmodat(
        parent,
        os(name),
        Mode::from_bits_truncate(meta.mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| fs_err(path, "chmod", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }
}
