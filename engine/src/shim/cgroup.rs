//! Finding out whether the kernel's OOM killer struck a container: its memory cgroup
//! (read from `/proc/<pid>/cgroup` of its init while it lives) holds an `oom_kill`
//! counter — cgroup v1 `memory.oom_control`, cgroup v2 `memory.events`. The v1 memory
//! controller is preferred when it is mounted (hybrid hosts also mount a v2 hierarchy
//! without the memory controller).

use std::fs;
use std::path::{Path, PathBuf};

/// The file holding a container's `oom_kill` counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OomCounter {
    file: PathBuf,
}

impl OomCounter {
    /// The counter of the memory cgroup `pid` is in, if one can be found.
    pub(crate) fn of_pid(pid: u32) -> Option<OomCounter> {
        let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        locate(&cgroups, &mountinfo)
            .into_iter()
            .find(|c| c.file.is_file())
    }

    /// The counter of the cgroup the bundle's spec puts the container in (an absolute
    /// `linux.cgroupsPath`), for when its init is gone already and its
    /// `/proc/<pid>/cgroup` with it: a container started at launch (`runc run`) may
    /// have exited before the shim looks. The cgroup stays until the runtime deletes
    /// the container.
    pub(crate) fn of_spec(bundle: &Path) -> Option<OomCounter> {
        #[derive(serde::Deserialize)]
        struct OnlyLinux {
            linux: Option<OnlyCgroupsPath>,
        }
        #[derive(serde::Deserialize)]
        struct OnlyCgroupsPath {
            #[serde(rename = "cgroupsPath")]
            cgroups_path: Option<String>,
        }
        let bytes = fs::read(bundle.join(crate::oci::CONFIG_FILE)).ok()?;
        let spec: OnlyLinux = serde_json::from_slice(&bytes).ok()?;
        let path = spec.linux?.cgroups_path?;
        // Relative paths are runc's own cgroup's children; `a:b:c` is systemd's form.
        if !path.starts_with('/') || path.contains(':') {
            return None;
        }
        // As /proc/<pid>/cgroup would list it: the v1 memory controller, and v2.
        let cgroups = format!("0:memory:{path}\n0::{path}\n");
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        locate(&cgroups, &mountinfo)
            .into_iter()
            .find(|c| c.file.is_file())
    }

    /// The number of OOM kills in the cgroup so far; `None` if it cannot be read.
    pub(crate) fn count(&self) -> Option<u64> {
        let text = fs::read_to_string(&self.file).ok()?;
        oom_kills(&text)
    }

    /// The counter's file.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }
}

/// The candidate counter files, best first, from a process's `/proc/<pid>/cgroup` and
/// the shim's `/proc/self/mountinfo`.
pub(crate) fn locate(cgroups: &str, mountinfo: &str) -> Vec<OomCounter> {
    let mut found = Vec::new();
    let mounts: Vec<Mount<'_>> = mountinfo.lines().filter_map(Mount::parse).collect();
    // cgroup v1: `4:memory:/path` (controllers may be combined: `4:memory,foo:/path`).
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            for m in mounts.iter().filter(|m| {
                m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory")
            }) {
                found.push(OomCounter {
                    file: m.join(path).join("memory.oom_control"),
                });
            }
        }
    }
    // cgroup v2: `0::/path`.
    for line in cgroups.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            for m in mounts.iter().filter(|m| m.fstype == "cgroup2") {
                found.push(OomCounter {
                    file: m.join(path).join("memory.events"),
                });
            }
        }
    }
    found
}

/// The `oom_kill N` line of `memory.events` or `memory.oom_control`.
pub(crate) fn oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// One line of `/proc/self/mountinfo`, the fields we use.
struct Mount<'a> {
    root: &'a str,
    mountpoint: &'a str,
    fstype: &'a str,
    super_options: &'a str,
}

impl<'a> Mount<'a> {
    fn parse(line: &'a str) -> Option<Mount<'a>> {
        let (left, right) = line.split_once(" - ")?;
        let mut left = left.split(' ');
        let root = left.nth(3)?;
        let mountpoint = left.next()?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let super_options = right.nth(1).unwrap_or_default();
        Some(Mount {
            root,
            mountpoint,
            fstype,
            super_options,
        })
    }

    /// The directory of cgroup `path` under this mount (whose own root may be a
    /// sub-cgroup, in a cgroup namespace).
    fn join(&self, path: &str) -> PathBuf {
        let rel = if self.root == "/" {
            path
        } else {
            path.strip_prefix(self.root).unwrap_or(path)
        };
        Path::new(self.mountpoint).join(rel.trim_start_matches('/'))
    }
}
