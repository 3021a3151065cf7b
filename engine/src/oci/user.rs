//! The container's user: `name`, `uid`, `name:group`, `uid:gid` resolved against the
//! image's `/etc/passwd` and `/etc/group`, the way runc's `GetExecUser` does (which is
//! what Docker and containerd use). The files are read with `openat2(RESOLVE_IN_ROOT)`,
//! so a symlink in the image can never lead to the host's files.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::EngineError;

/// Largest `/etc/passwd` or `/etc/group` read (a bigger one is refused).
const MAX_DB_FILE: u64 = 16 << 20;

/// Highest uid or gid accepted (runc's limit, 2³¹ − 1).
const MAX_ID: u32 = (1 << 31) - 1;

/// One `/etc/passwd` line.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` line.
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: (*f.first()?).to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: (*f.first()?).to_string(),
                gid: f.get(2)?.trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Reads `rel` (e.g. `etc/passwd`) inside `rootfs`, resolving every symlink with
/// `rootfs` as `/`. `None` when it does not exist.
pub(crate) fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>, EngineError> {
    let shown = rootfs.join(rel);
    let fail = |e: &dyn std::fmt::Display| {
        EngineError::Internal(format!("reading {}: {e}", shown.display()))
    };
    let root = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(&e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 0;
    let fd = loop {
        match openat2(&root, rel, how) {
            Ok(fd) => break fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            // A concurrent rename raced the lookup; the kernel asks for a retry.
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            Err(e) => return Err(fail(&e)),
        }
    };
    let st = fstat(&fd).map_err(|e| fail(&e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(EngineError::InvalidArgument(format!(
            "/{rel} in the image is not a regular file"
        )));
    }
    // Reopen the O_PATH descriptor for reading: the file was found inside the root,
    // and only now (known to be a regular file) is it opened.
    let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| fail(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_DB_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_DB_FILE) {
        return Err(EngineError::InvalidArgument(format!(
            "/{rel} in the image is larger than {MAX_DB_FILE} bytes"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// A number that is a valid id, if `s` is one.
fn numeric_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves the container's user against the image's `/etc/passwd` and `/etc/group`
/// inside `rootfs`: returns `(uid, gid, additional gids)`.
///
/// `user` is `name`, `uid`, `name:group`, `uid:gid` (or a mix); `None` or empty means
/// root. A user found in `/etc/passwd` takes its primary group from there and, unless a
/// group is given explicitly, its supplementary groups from its memberships in
/// `/etc/group`. A numeric uid needs no `/etc/passwd` entry (its group is then 0); an
/// unknown name is an [`EngineError::InvalidArgument`].
pub fn resolve_user(
    rootfs: &Path,
    user: Option<&str>,
) -> Result<(u32, u32, Vec<u32>), EngineError> {
    let spec = user.unwrap_or("");
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let numeric_uid = numeric_id(user_arg);
    if user_arg.bytes().all(|b| b.is_ascii_digit()) && numeric_uid.is_none_or(|n| n > MAX_ID) {
        return Err(EngineError::InvalidArgument(format!(
            "user {user_arg:?} is out of range: uids go up to {MAX_ID}"
        )));
    }

    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let entries = passwd.as_deref().map(parse_passwd).unwrap_or_default();
    let found = entries
        .iter()
        .find(|e| e.name == user_arg || numeric_uid == Some(e.uid));
    let (uid, mut gid, matched_name) = match (found, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.as_str())),
        (None, Some(n)) => (n, 0, None),
        (None, None) if passwd.is_none() => {
            return Err(EngineError::InvalidArgument(format!(
                "user {user_arg:?} not found: the image has no /etc/passwd"
            )))
        }
        (None, None) => {
            return Err(EngineError::InvalidArgument(format!(
                "user {user_arg:?} not found in the image's /etc/passwd"
            )))
        }
    };

    let mut additional = Vec::new();
    if !group_arg.is_empty() || matched_name.is_some() {
        let group = read_in_root(rootfs, "etc/group")?;
        let groups = group.as_deref().map(parse_group).unwrap_or_default();
        if !group_arg.is_empty() {
            let numeric_gid = numeric_id(group_arg);
            if group_arg.bytes().all(|b| b.is_ascii_digit())
                && numeric_gid.is_none_or(|n| n > MAX_ID)
            {
                return Err(EngineError::InvalidArgument(format!(
                    "group {group_arg:?} is out of range: gids go up to {MAX_ID}"
                )));
            }
            gid = match (
                groups
                    .iter()
                    .find(|g| g.name == group_arg || numeric_gid == Some(g.gid)),
                numeric_gid,
            ) {
                (Some(g), _) => g.gid,
                (None, Some(n)) => n,
                (None, None) if group.is_none() => {
                    return Err(EngineError::InvalidArgument(format!(
                        "group {group_arg:?} not found: the image has no /etc/group"
                    )))
                }
                (None, None) => {
                    return Err(EngineError::InvalidArgument(format!(
                        "group {group_arg:?} not found in the image's /etc/group"
                    )))
                }
            };
        } else if let Some(name) = matched_name {
            for g in groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
            {
                if !additional.contains(&g.gid) {
                    additional.push(g.gid);
                }
            }
        }
    }
    Ok((uid, gid, additional))
}
