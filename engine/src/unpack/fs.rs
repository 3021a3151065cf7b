//! Filesystem operations relative to directory fds, so nothing is ever looked up by an
//! absolute host path. Directories are found with `openat2(RESOLVE_IN_ROOT)`: the
//! kernel resolves every symlink as if the snapshot root were `/`, so a link to `/`
//! or to `../../..` leads back into the root, never out of it.

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Most symlinks followed while creating one parent path (as the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Bytes as an `OsStr` (paths in tar streams are bytes, not UTF-8).
pub(crate) fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Identity of a directory: `(st_dev, st_ino)`.
pub(crate) type DirId = (u64, u64);

/// The identity of an open file.
pub(crate) fn id_of(fd: BorrowedFd<'_>) -> nix::Result<DirId> {
    Ok(id_of_stat(&fstat(fd)?))
}

// `dev_t` and `ino_t` are `u64` on the targets we build for, but not on every Linux.
#[allow(clippy::useless_conversion)]
fn id_of_stat(st: &FileStat) -> DirId {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

/// The file type of `dir/name`, not following a final symlink; `None` if absent.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Option<SFlag>> {
    match fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens (`O_PATH`) the directory at the normalised relative `path` (empty: the root
/// itself), resolving symlinks with `root` as `/` and refusing magic links.
pub(crate) fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let path = if path.is_empty() { b"." } else { path };
    // EAGAIN: a concurrent rename or mount raced the resolution; the kernel asks us to
    // retry rather than risk a wrong answer.
    let mut tries = 0;
    loop {
        match openat2(root, os(path), how) {
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            r => return r,
        }
    }
}

/// Opens the directory at `path` like [`open_dir_in_root`], creating what is missing
/// (mode 0755) inside the root. A dangling symlink on the way is followed the way the
/// kernel would (again with `root` as `/`) and the directory it names is created; a
/// component that is neither a directory nor a symlink gives `ENOTDIR`, a symlink
/// loop `ELOOP`. `created(dir, name)` is told about every directory made.
pub(crate) fn create_dir_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    mut created: impl FnMut(BorrowedFd<'_>, &[u8]) -> nix::Result<()>,
) -> nix::Result<OwnedFd> {
    let mut comps: Vec<Vec<u8>> = split(path).map(<[u8]>::to_vec).collect();
    let mut links = 0;
    'restart: loop {
        let mut cur = open_dir_in_root(root, b"")?;
        let mut prefix: Vec<u8> = Vec::with_capacity(path.len());
        let mut i = 0;
        while i < comps.len() {
            let before = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&comps[i]);
            match open_dir_in_root(root, &prefix) {
                Ok(fd) => {
                    cur = fd;
                    i += 1;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
            // `cur` is comps[..i] resolved; comps[i] is missing from it, or is a
            // symlink to something missing.
            let name = &comps[i];
            match fstatat(&cur, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Err(Errno::ENOENT) => {
                    match mkdirat(&cur, os(name), Mode::from_bits_truncate(0o755)) {
                        Ok(()) => created(cur.as_fd(), name)?,
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    // Resolve it again from the root on the next turn.
                    prefix.truncate(before);
                }
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    let target = readlinkat(&cur, os(name))?;
                    let target = target.as_bytes();
                    let mut next: Vec<Vec<u8>> = if target.starts_with(b"/") {
                        Vec::new()
                    } else {
                        comps[..i].to_vec()
                    };
                    next.extend(split(target).map(<[u8]>::to_vec));
                    next.extend_from_slice(&comps[i + 1..]);
                    comps = next;
                    continue 'restart;
                }
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR =>
                {
                    // Appeared meanwhile; start over (bounded like a symlink).
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    continue 'restart;
                }
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(e) => return Err(e),
            }
        }
        return Ok(cur);
    }
}

/// Non-empty, non-`.` components of a path (`..` is kept: the kernel resolves it,
/// clamped at the root).
fn split(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// An open directory with the names it held when listed.
struct Frame {
    dir: Dir,
    /// Its name in its parent.
    name: Vec<u8>,
    pending: Vec<Vec<u8>>,
}

impl Frame {
    fn open(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Frame> {
        let fd = openat(
            parent,
            os(name),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut dir = Dir::from_fd(fd)?;
        let pending = list(&mut dir)?.into_iter().map(|(n, _)| n).collect();
        Ok(Frame {
            dir,
            name: name.to_vec(),
            pending,
        })
    }
}

/// The entries of a directory other than `.` and `..`, with their type when the
/// filesystem reports it.
pub(crate) fn list(dir: &mut Dir) -> nix::Result<Vec<(Vec<u8>, Option<Type>)>> {
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push((name.to_vec(), e.file_type()));
        }
    }
    Ok(out)
}

/// Removes `parent/name` whatever it is, a directory with all its content included;
/// absent is fine. Works through fds only and never follows a symlink; iterative, so a
/// hostile depth cannot overflow the stack (it can at most run out of fds, an error).
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match unlinkat(parent, os(name), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        // Linux reports a directory given to unlink(2) as EISDIR.
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    let mut stack = vec![Frame::open(parent, name)?];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(child) = top.pending.pop() {
            match unlinkat(top.dir.as_fd(), os(&child), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => {
                    let frame = Frame::open(top.dir.as_fd(), &child)?;
                    stack.push(frame);
                }
                Err(e) => return Err(e),
            }
        } else {
            let done = stack.pop().map(|f| f.name).unwrap_or_default();
            let holder = stack.last().map_or(parent, |f| f.dir.as_fd());
            match unlinkat(holder, os(&done), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets an extended attribute on `dir/name` without following a final symlink: works
/// for symlinks, device nodes and fifos, which cannot be opened for `fsetxattr`. The
/// path goes through `/proc/self/fd/<dir>`, the directory already resolved inside the
/// root; only `name`, a single component, is looked up, with `lsetxattr`.
pub(crate) fn lsetxattr_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    let mut path = Vec::with_capacity(24 + name.len());
    write!(path, "/proc/self/fd/{}/", dir.as_raw_fd())?;
    path.extend_from_slice(name);
    xattr::set(Path::new(os(&path)), os(key), value)
}

/// Opens the directory `dir` itself for reading (for `fsetxattr`, listing).
pub(crate) fn reopen_dir(dir: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory at `rel` below `base` without following any symlink and
/// without leaving `base`.
pub(crate) fn open_dir_beneath(base: BorrowedFd<'_>, rel: &[u8]) -> nix::Result<OwnedFd> {
    if rel.is_empty() {
        return reopen_dir(base);
    }
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(base, os(rel), how)
}
