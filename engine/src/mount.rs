//! Mounts as data, and the few syscalls that apply them.
//!
//! Snapshotters return [`Mount`]s and never mount anything themselves (as containerd's):
//! whoever needs the filesystem (the unpacker, the shim, a test) calls [`mount_all`] and
//! [`unmount`]. Overlay option strings longer than a page (a deep layer stack) are
//! shortened by mounting from a thread whose working directory is the common parent of
//! the layer directories (`unshare(CLONE_FS)` makes that directory private to the
//! thread), so `lowerdir` can list short relative paths.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The kernel's limit on mount data (one page).
const MAX_MOUNT_DATA: usize = 4096 - 1;

/// One mount to perform, as containerd's `mount.Mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Source (a directory for `bind`; `overlay` for overlay).
    pub source: String,
    /// Options: `ro`, `rbind`, `lowerdir=…`, `upperdir=…`, `workdir=…`.
    pub options: Vec<String>,
}

impl Mount {
    /// A bind mount of `dir`, read-only when `ro`.
    pub fn bind(dir: &Path, ro: bool) -> Mount {
        let mut options = vec!["rbind".to_string()];
        options.push(if ro { "ro" } else { "rw" }.to_string());
        Mount {
            kind: "bind".into(),
            source: dir.display().to_string(),
            options,
        }
    }

    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

fn sys(what: String) -> impl FnOnce(nix::Error) -> EngineError {
    move |e| EngineError::Internal(format!("{what}: {e}"))
}

/// Mounts every mount in order on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), EngineError> {
    for m in mounts {
        mount_one(m, target)?;
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), EngineError> {
    match m.kind.as_str() {
        "bind" => {
            let mut flags = MsFlags::MS_BIND;
            if m.options.iter().any(|o| o == "rbind") {
                flags |= MsFlags::MS_REC;
            }
            nix::mount::mount(
                Some(Path::new(&m.source)),
                target,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(sys(format!(
                "bind-mounting {} on {}",
                m.source,
                target.display()
            )))?;
            if m.read_only() {
                nix::mount::mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(sys(format!("making {} read-only", target.display())))?;
            }
            Ok(())
        }
        "overlay" => mount_overlay(m, target),
        other => Err(EngineError::InvalidArgument(format!(
            "unsupported mount type {other:?}"
        ))),
    }
}

fn mount_overlay(m: &Mount, target: &Path) -> Result<(), EngineError> {
    let mut flags = MsFlags::empty();
    let data: Vec<&str> = m
        .options
        .iter()
        .filter(|o| {
            if o.as_str() == "ro" {
                flags |= MsFlags::MS_RDONLY;
                false
            } else {
                o.as_str() != "rw"
            }
        })
        .map(String::as_str)
        .collect();
    let joined = data.join(",");
    if joined.len() <= MAX_MOUNT_DATA {
        return nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(joined.as_str()),
        )
        .map_err(sys(format!("mounting overlay on {}", target.display())));
    }
    // Too long for one page: mount from a thread whose cwd is the common parent.
    let (dir, relative) = compact_overlay_options(&data).ok_or_else(|| {
        EngineError::InvalidArgument(format!(
            "overlay options are {} bytes and cannot be shortened below the kernel's limit",
            joined.len()
        ))
    })?;
    let target = target.to_path_buf();
    let target_abs = if target.is_absolute() {
        target
    } else {
        std::env::current_dir()
            .map_err(|e| EngineError::Internal(format!("current dir: {e}")))?
            .join(target)
    };
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), EngineError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
                .map_err(sys("unshare(CLONE_FS) for a long overlay mount".into()))?;
            nix::unistd::chdir(&dir).map_err(sys(format!("chdir {}", dir.display())))?;
            nix::mount::mount(
                Some("overlay"),
                &target_abs,
                Some("overlay"),
                flags,
                Some(relative.as_str()),
            )
            .map_err(sys(format!("mounting overlay on {}", target_abs.display())))
        })
        .join()
        .map_err(|_| EngineError::Internal("overlay mount thread panicked".into()))?
    })
}

/// Rewrites `lowerdir`, `upperdir` and `workdir` relative to their longest common
/// parent directory; returns that directory and the new option string when it fits.
fn compact_overlay_options(options: &[&str]) -> Option<(PathBuf, String)> {
    let mut paths: Vec<&str> = Vec::new();
    for o in options {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            paths.extend(v.split(':'));
        } else if let Some(v) = o
            .strip_prefix("upperdir=")
            .or_else(|| o.strip_prefix("workdir="))
        {
            paths.push(v);
        }
    }
    let first = Path::new(paths.first()?);
    let mut common: PathBuf = first.parent()?.to_path_buf();
    while !paths.iter().all(|p| Path::new(p).starts_with(&common)) {
        common = common.parent()?.to_path_buf();
    }
    let rel = |p: &str| -> Option<String> {
        Path::new(p)
            .strip_prefix(&common)
            .ok()
            .map(|r| r.display().to_string())
    };
    let mut out: Vec<String> = Vec::new();
    for o in options {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            let parts: Option<Vec<String>> = v.split(':').map(rel).collect();
            out.push(format!("lowerdir={}", parts?.join(":")));
        } else if let Some(v) = o.strip_prefix("upperdir=") {
            out.push(format!("upperdir={}", rel(v)?));
        } else if let Some(v) = o.strip_prefix("workdir=") {
            out.push(format!("workdir={}", rel(v)?));
        } else {
            out.push((*o).to_string());
        }
    }
    let joined = out.join(",");
    (joined.len() <= MAX_MOUNT_DATA).then_some((common, joined))
}

/// Whether `path` is a mount point, per `/proc/self/mountinfo` (which also sees bind
/// mounts of a directory on its own filesystem, where comparing devices would not).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == path)
}

/// Undoes mountinfo's octal escapes (space, tab, newline and backslash as `\ooo`).
fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            if let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Unmounts `target` (and anything mounted below it), detaching lazily if it is busy.
pub fn unmount(target: &Path) -> Result<(), EngineError> {
    loop {
        match nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue, // stacked mounts: unmount until nothing is left
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                return nix::mount::umount2(
                    target,
                    MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW,
                )
                .map_err(sys(format!("unmounting {}", target.display())))
            }
            Err(e) => return Err(sys(format!("unmounting {}", target.display()))(e)),
        }
    }
}

/// Whether the kernel offers overlayfs.
pub fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| s.lines().any(|l| l.trim_end().ends_with("overlay")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_and_mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mountinfo(r"/x\+12"), PathBuf::from(r"/x\+12"));
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }

    #[test]
    fn compacts_long_lowerdirs() {
        let lowers: Vec<String> = (1..=128)
            .rev()
            .map(|i| format!("/var/lib/berth/snapshots/overlayfs/snapshots/{i}/fs"))
            .collect();
        let opts = [
            format!("lowerdir={}", lowers.join(":")),
            "upperdir=/var/lib/berth/snapshots/overlayfs/snapshots/129/fs".to_string(),
            "workdir=/var/lib/berth/snapshots/overlayfs/snapshots/129/work".to_string(),
        ];
        let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
        assert!(refs.join(",").len() > MAX_MOUNT_DATA);
        let (dir, s) = compact_overlay_options(&refs).unwrap();
        assert_eq!(
            dir,
            Path::new("/var/lib/berth/snapshots/overlayfs/snapshots")
        );
        assert!(s.starts_with("lowerdir=128/fs:127/fs:"), "{s}");
        assert!(s.ends_with("upperdir=129/fs,workdir=129/work"), "{s}");
        assert!(s.len() <= MAX_MOUNT_DATA);
    }
}
