//! Network namespaces owned by berth, each kept alive by a bind mount of its nsfs file
//! onto an empty file (as `ip netns add` does), so no process has to hold it.
//!
//! [`create`] runs on a dedicated thread: `unshare(CLONE_NEWNET)` moves only that
//! thread into the new namespace, `/proc/thread-self/ns/net` is bind-mounted on the
//! target path, and the thread exits; the rest of the process never changes namespace.

use std::io::ErrorKind as IoKind;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::EngineError;

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let what = format!("{what} {}", path.display());
    move |e| EngineError::Internal(format!("{what}: {e}"))
}

/// The empty file a namespace is bind-mounted on; `create_new`: two creators of the
/// same path cannot both succeed.
fn mount_point(path: &Path) -> Result<(), EngineError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == IoKind::AlreadyExists => {
            return Err(EngineError::AlreadyExists {
                kind: "network namespace",
                id: path.display().to_string(),
            })
        }
        Err(e) => return Err(io_err("creating network namespace file", path)(e)),
    }
    Ok(())
}

/// Creates a new network namespace bind-mounted at `path` (an existing file or
/// directory there is refused). The parent directory must exist.
pub fn create(path: &Path) -> Result<(), EngineError> {
    mount_point(path)?;
    let target = path.to_path_buf();
    let joined = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || -> Result<(), String> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind-mounting the namespace: {e}"))
        })
        .map_err(io_err(
            "spawning a thread to create network namespace",
            path,
        ))?
        .join();
    let result = match joined {
        Ok(r) => r,
        Err(_) => Err("the creating thread panicked".to_string()),
    };
    if let Err(why) = result {
        let _ = std::fs::remove_file(path);
        return Err(EngineError::Internal(format!(
            "creating network namespace {}: {why}",
            path.display()
        )));
    }
    Ok(())
}

/// Bind-mounts an existing network namespace (e.g. `/proc/<pid>/ns/net` of a running
/// container) at `path`, so others can join it by path while it lives.
pub fn bind(source: &Path, path: &Path) -> Result<(), EngineError> {
    mount_point(path)?;
    let mounted = nix::mount::mount(
        Some(source),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = mounted {
        let _ = std::fs::remove_file(path);
        return Err(EngineError::Internal(format!(
            "bind-mounting network namespace {} on {}: {e}",
            source.display(),
            path.display()
        )));
    }
    if !exists(path) {
        let _ = remove(path);
        return Err(EngineError::InvalidArgument(format!(
            "{} is not a network namespace",
            source.display()
        )));
    }
    Ok(())
}

/// Whether `path` is a (bind-mounted) network namespace. A missing file, or a file
/// whose mount is gone, is not.
pub fn exists(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Unmounts and deletes the namespace at `path`. A missing one, or a file that is no
/// longer mounted, is fine (removal is idempotent).
pub fn remove(path: &Path) -> Result<(), EngineError> {
    // A namespace may have been mounted twice on the same file; unmount them all.
    while exists(path) {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => break,
            Err(e) => {
                return Err(EngineError::Internal(format!(
                    "unmounting network namespace {}: {e}",
                    path.display()
                )))
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == IoKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing network namespace file", path)(e)),
    }
}
