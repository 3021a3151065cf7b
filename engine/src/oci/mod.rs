//! The OCI runtime spec (`config.json`) of a container, generated from its image
//! configuration and its [`ContainerConfig`] with the defaults Docker and containerd
//! use, secure by default:
//!
//! - the process: arguments by Docker's entrypoint/cmd rules, the image's environment
//!   overridden by the container's, the user resolved against the image's
//!   `/etc/passwd` ([`resolve_user`]), Docker's 14 default capabilities
//!   ([`DEFAULT_CAPABILITIES`]), `noNewPrivileges`, `RLIMIT_NOFILE` 1048576 (or less
//!   where the host cannot grant it, see [`nofile_limit`]);
//! - mounts: `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` (read-only),
//!   `/sys/fs/cgroup` (read-only), the `/etc/hosts`, `/etc/resolv.conf` and
//!   `/etc/hostname` berthd prepared, then the user's bind and tmpfs mounts;
//! - Linux: pid, ipc, uts, mount and network namespaces (plus cgroup on a cgroup v2
//!   host), Docker's masked and read-only paths, the cgroup `/berth/<ns>/<id>` with
//!   the container's limits, a deny-all device rule list with the standard devices
//!   allowed, and the seccomp allow-list of [`default_seccomp`].
//!
//! [`write_config`] writes it durably into the bundle; [`exec_process`] derives the
//! process of an exec from it.

mod seccomp;
mod user;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, Process,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, User, UserBuilder,
};
use oci_spec::OciSpecError;

use crate::container::parse::{normalise_container_path, validate_env};
use crate::container::{ContainerConfig, ContainerId, MountKind};
use crate::ids::NamespaceName;
use crate::shim::proto::ExecRequest;
use crate::EngineError;

pub use seccomp::default_seccomp;
pub use user::resolve_user;

/// The OCI version written in `ociVersion`.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// Name of the runtime spec in the bundle.
pub const CONFIG_FILE: &str = "config.json";

/// `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The soft and hard `RLIMIT_NOFILE` a container's processes get where the host allows
/// it (see [`nofile_limit`]).
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// `CAP_SYS_RESOURCE`'s bit: needed to raise a hard limit.
const CAP_SYS_RESOURCE: u32 = 24;

/// The CFS period set when a quota comes without one, in microseconds.
const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// The capabilities a container's processes hold (Docker's default set): bounding,
/// effective and permitted; inheritable and ambient are empty.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from the container (Docker's list): files are covered by `/dev/null`,
/// directories by an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in the container (Docker's list).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The character devices a container may use (`type, major, minor`; `None` = any
/// minor): null, zero, full, tty, random, urandom, ptmx and the pseudo-terminals.
const ALLOWED_DEVICES: &[(i64, Option<i64>)] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (5, Some(0)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(2)),
    (136, None),
];

/// Files berthd prepared in the bundle and the runtime bind-mounts over the image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    /// Mounted on `/etc/hosts`.
    pub hosts: PathBuf,
    /// Mounted on `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Mounted on `/etc/hostname`.
    pub hostname: PathBuf,
}

/// Everything a container's runtime spec is generated from.
#[derive(Debug, Clone)]
pub struct SpecInputs<'a> {
    /// The container's id (names its hostname by default).
    pub id: &'a ContainerId,
    /// Its namespace (part of the cgroup path).
    pub namespace: &'a NamespaceName,
    /// Its validated configuration.
    pub config: &'a ContainerConfig,
    /// Its image's configuration (entrypoint, cmd, env, working dir, user).
    pub image: &'a crate::image::Config,
    /// The mounted rootfs, read to resolve user and group names (`/etc/passwd`,
    /// `/etc/group`) without following symlinks out of it.
    pub rootfs: &'a Path,
    /// Join this network namespace (a bind-mounted netns path) instead of creating one.
    pub netns: Option<&'a Path>,
    /// Stay in the host's network namespace (`--network host`; `netns` is ignored).
    pub host_network: bool,
    /// Writable files the runtime bind-mounts on `/etc/hosts`, `/etc/resolv.conf` and
    /// `/etc/hostname`; `None`: the image's own are used.
    pub etc_files: Option<EtcFiles>,
}

fn oci<T>(r: Result<T, OciSpecError>) -> Result<T, EngineError> {
    r.map_err(|e| EngineError::Internal(format!("building the runtime spec: {e}")))
}

/// The cgroup of a container (cgroupfs driver): `/berth/<namespace>/<id>`.
pub fn cgroups_path(namespace: &NamespaceName, id: &ContainerId) -> String {
    format!("/berth/{}/{}", namespace.as_str(), id.as_str())
}

/// Whether `/sys/fs/cgroup` is the cgroup v2 unified hierarchy (rather than cgroup v1
/// or the hybrid layout).
pub fn cgroup2_unified() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// The `RLIMIT_NOFILE` (soft and hard) given to containers: [`NOFILE_LIMIT`], lowered
/// to what this process could set itself, since the runtime inherits its limits:
/// `fs.nr_open` when it holds `CAP_SYS_RESOURCE`, its own hard limit otherwise (a
/// runtime asked for more fails to start the container with `EPERM`).
pub fn nofile_limit() -> u64 {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let can_raise = read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0);
    let ceiling = if can_raise {
        read("/proc/sys/fs/nr_open").trim().parse::<u64>().ok()
    } else {
        // "Max open files   <soft>   <hard>   files"
        read("/proc/self/limits")
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_string))
            .and_then(|hard| match hard.as_str() {
                "unlimited" => Some(u64::MAX),
                n => n.parse().ok(),
            })
    };
    ceiling.map_or(NOFILE_LIMIT, |c| NOFILE_LIMIT.min(c))
}

/// The process arguments by Docker's rules: the container's entrypoint replaces the
/// image's and drops the image's cmd; the container's cmd replaces the image's.
fn process_args(
    config: &ContainerConfig,
    image: &crate::image::Config,
) -> Result<Vec<String>, EngineError> {
    let (entrypoint, cmd): (&[String], &[String]) = match (&config.entrypoint, &config.cmd) {
        (Some(e), Some(c)) => (e, c),
        (Some(e), None) => (e, &[]),
        (None, Some(c)) => (image.entrypoint(), c),
        (None, None) => (image.entrypoint(), image.cmd()),
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if args.is_empty() {
        return Err(EngineError::InvalidArgument(
            "no command: the image has no entrypoint or cmd and none was given".into(),
        ));
    }
    if let Some(a) = args.iter().find(|a| a.contains('\0')) {
        return Err(EngineError::InvalidArgument(format!(
            "command argument {a:?} contains a NUL byte"
        )));
    }
    Ok(args)
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Replaces the entry with `entry`'s key, or appends it.
fn set_env(env: &mut Vec<String>, entry: &str) {
    let key = env_key(entry);
    match env.iter_mut().find(|e| env_key(e) == key) {
        Some(slot) => entry.clone_into(slot),
        None => env.push(entry.to_string()),
    }
}

/// The environment, as Docker builds it: `PATH` (default) and `HOSTNAME`, replaced or
/// extended by the image's environment, then by the container's.
fn process_env(
    config: &ContainerConfig,
    image: &crate::image::Config,
    hostname: &str,
) -> Result<Vec<String>, EngineError> {
    validate_env(&config.env)?;
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    for e in image.env().iter().chain(&config.env) {
        set_env(&mut env, e);
    }
    validate_env(&env).map_err(|e| {
        EngineError::InvalidArgument(format!("the image's environment is not valid: {e}"))
    })?;
    Ok(env)
}

/// The working directory: the container's (absolute), else the image's, else `/`.
fn process_cwd(
    config: &ContainerConfig,
    image: &crate::image::Config,
) -> Result<String, EngineError> {
    if let Some(dir) = &config.working_dir {
        return normalise_container_path("working directory", dir);
    }
    match image.working_dir() {
        Some(dir) if dir.starts_with('/') => normalise_container_path("working directory", dir),
        Some(dir) => normalise_container_path("working directory", &format!("/{dir}")),
        None => Ok("/".into()),
    }
}

fn capability_set(names: &[&str]) -> Result<Capabilities, EngineError> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String((*n).to_string()))
                .map_err(|e| EngineError::Internal(format!("capability {n:?}: {e}")))
        })
        .collect()
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, EngineError> {
    oci(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_string()).collect::<Vec<_>>())
        .build())
}

/// The mounts every container gets (those of runc's and Docker's default spec).
fn default_mounts() -> Result<Vec<Mount>, EngineError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

/// Number of components of a normalised absolute path (`/` has none).
fn depth(path: &Path) -> usize {
    path.components().count().saturating_sub(1)
}

/// Whether `path` is `dir` or lies below it.
fn within(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// All mounts in order: the defaults (minus those a user mount replaces or covers),
/// then the etc files and the user's mounts, parents before children.
fn mounts(config: &ContainerConfig, etc: Option<&EtcFiles>) -> Result<Vec<Mount>, EngineError> {
    let user_dests: Vec<PathBuf> = config
        .mounts
        .iter()
        .map(|m| PathBuf::from(&m.destination))
        .collect();
    let mut out: Vec<Mount> = default_mounts()?
        .into_iter()
        .filter(|m| !user_dests.iter().any(|d| within(m.destination(), d)))
        .collect();

    let mut extra = Vec::new();
    if let Some(etc) = etc {
        let mode = if config.read_only { "ro" } else { "rw" };
        for (dest, src) in [
            ("/etc/hosts", &etc.hosts),
            ("/etc/resolv.conf", &etc.resolv_conf),
            ("/etc/hostname", &etc.hostname),
        ] {
            if user_dests.iter().any(|d| d == Path::new(dest)) {
                continue;
            }
            let src = src.to_str().ok_or_else(|| {
                EngineError::Internal(format!("{} is not valid UTF-8", src.display()))
            })?;
            extra.push(mount(dest, "bind", src, &["rbind", "rprivate", mode])?);
        }
    }
    for m in &config.mounts {
        let mode = if m.readonly { "ro" } else { "rw" };
        let options: Vec<&str> = match m.kind {
            MountKind::Bind => ["rbind", "rprivate", mode]
                .into_iter()
                .chain(m.options.iter().map(String::as_str))
                .collect(),
            MountKind::Tmpfs => ["noexec", "nosuid", "nodev"]
                .into_iter()
                .chain(m.options.iter().map(String::as_str))
                .chain(m.readonly.then_some("ro"))
                .collect(),
        };
        let (typ, source) = match m.kind {
            MountKind::Bind => ("bind", m.source.as_str()),
            MountKind::Tmpfs => ("tmpfs", "tmpfs"),
        };
        extra.push(mount(&m.destination, typ, source, &options)?);
    }
    extra.sort_by_key(|m| depth(m.destination()));
    out.extend(extra);
    Ok(out)
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, EngineError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    oci(b.build())
}

/// The device cgroup rules: deny everything, then allow creating any device node
/// (`mknod` needs `CAP_MKNOD` too) and using the standard character devices.
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, EngineError> {
    let mut rules = vec![
        device_rule(false, None, None, None, "rwm")?,
        device_rule(true, Some(LinuxDeviceType::C), None, None, "m")?,
        device_rule(true, Some(LinuxDeviceType::B), None, None, "m")?,
    ];
    for &(major, minor) in ALLOWED_DEVICES {
        rules.push(device_rule(
            true,
            Some(LinuxDeviceType::C),
            Some(major),
            minor,
            "rwm",
        )?);
    }
    Ok(rules)
}

fn resources(
    r: &crate::container::Resources,
) -> Result<oci_spec::runtime::LinuxResources, EngineError> {
    let mut b = LinuxResourcesBuilder::default().devices(device_rules()?);
    if let Some(limit) = r.memory {
        b = b.memory(oci(LinuxMemoryBuilder::default().limit(limit).build())?);
    }
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(s) = r.cpu_shares {
            cpu = cpu.shares(s);
        }
        if let Some(q) = r.cpu_quota {
            cpu = cpu
                .quota(q)
                .period(r.cpu_period.unwrap_or(DEFAULT_CPU_PERIOD));
        } else if let Some(p) = r.cpu_period {
            cpu = cpu.period(p);
        }
        b = b.cpu(oci(cpu.build())?);
    }
    if let Some(limit) = r.pids_limit {
        b = b.pids(oci(LinuxPidsBuilder::default().limit(limit).build())?);
    }
    oci(b.build())
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, EngineError> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    oci(match path {
        Some(p) => b.path(p).build(),
        None => b.build(),
    })
}

/// Generates the runtime spec of a container (see the module documentation for what
/// it holds). Fails with [`EngineError::InvalidArgument`] when the image and the
/// configuration give no command, when the user or group cannot be resolved in the
/// rootfs, or when the environment or working directory is not valid.
pub fn generate(inputs: &SpecInputs) -> Result<Spec, EngineError> {
    build(inputs, cgroup2_unified())
}

/// [`generate`] for a host whose cgroups are (`cgroup2`) or are not the v2 unified
/// hierarchy: only there does the container get its own cgroup namespace (as runc's
/// defaults do).
fn build(inputs: &SpecInputs, cgroup2: bool) -> Result<Spec, EngineError> {
    build_with(inputs, cgroup2, nofile_limit())
}

/// [`build`] with the `RLIMIT_NOFILE` to set.
fn build_with(inputs: &SpecInputs, cgroup2: bool, nofile: u64) -> Result<Spec, EngineError> {
    let config = inputs.config;
    let image = inputs.image;
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| inputs.id.short().to_string());
    let args = process_args(config, image)?;
    let env = process_env(config, image, &hostname)?;
    let cwd = process_cwd(config, image)?;
    let (uid, gid, additional_gids) = resolve_user(
        inputs.rootfs,
        config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .or(image.user()),
    )?;
    let mut user = UserBuilder::default().uid(uid).gid(gid);
    if !additional_gids.is_empty() {
        user = user.additional_gids(additional_gids);
    }
    let caps = capability_set(DEFAULT_CAPABILITIES)?;
    let capabilities = oci(LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build())?;
    let nofile = oci(PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build())?;
    let process = oci(ProcessBuilder::default()
        .terminal(false)
        .user(oci(user.build())?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .rlimits(vec![nofile])
        .build())?;

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None)?,
        namespace(LinuxNamespaceType::Ipc, None)?,
        namespace(LinuxNamespaceType::Uts, None)?,
        namespace(LinuxNamespaceType::Mount, None)?,
    ];
    if !inputs.host_network {
        namespaces.push(namespace(LinuxNamespaceType::Network, inputs.netns)?);
    }
    if cgroup2 {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup, None)?);
    }
    let linux = oci(LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| (*p).to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| (*p).to_string())
                .collect::<Vec<_>>(),
        )
        .cgroups_path(cgroups_path(inputs.namespace, inputs.id))
        .resources(resources(&config.resources)?)
        .seccomp(default_seccomp())
        .build())?;

    oci(SpecBuilder::default()
        .version(OCI_VERSION)
        .root(oci(RootBuilder::default()
            .path("rootfs")
            .readonly(config.read_only)
            .build())?)
        .process(process)
        .hostname(hostname)
        .mounts(mounts(config, inputs.etc_files.as_ref())?)
        .linux(linux)
        .build())
}

/// Writes `spec` to `<bundle>/config.json` durably: a temporary file (mode 0600: the
/// environment may hold secrets), fsync, rename over the old one, fsync of the bundle
/// directory.
pub fn write_config(bundle: &Path, spec: &Spec) -> Result<(), EngineError> {
    let path = bundle.join(CONFIG_FILE);
    let tmp = bundle.join(format!(".{CONFIG_FILE}.tmp"));
    let fail = |p: &Path, e: &dyn std::fmt::Display| {
        EngineError::Internal(format!("writing {}: {e}", p.display()))
    };
    let body = serde_json::to_vec_pretty(spec).map_err(|e| fail(&path, &e))?;
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(&tmp, &e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(&tmp, &e))?;
    f.write_all(&body).map_err(|e| fail(&tmp, &e))?;
    f.sync_all().map_err(|e| fail(&tmp, &e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| fail(&path, &e))?;
    File::open(bundle)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(bundle, &e))
}

/// The process of an exec (`runc exec --process process.json`): the container's process
/// (environment, working directory, user, capabilities, `noNewPrivileges`, rlimits,
/// AppArmor and SELinux labels) with the request's arguments, its environment entries
/// added over the container's (replacing those with the same name), its working
/// directory and its user (then without the container user's supplementary groups),
/// and never a terminal.
pub fn exec_process(spec: &Spec, req: &ExecRequest) -> Result<Process, EngineError> {
    let mut process = spec.process().clone().ok_or_else(|| {
        EngineError::FailedPrecondition("the container's runtime spec has no process".into())
    })?;
    if req.args.is_empty() {
        return Err(EngineError::InvalidArgument(
            "exec needs a command: args is empty".into(),
        ));
    }
    if let Some(a) = req.args.iter().find(|a| a.contains('\0')) {
        return Err(EngineError::InvalidArgument(format!(
            "exec argument {a:?} contains a NUL byte"
        )));
    }
    validate_env(&req.env)?;
    process.set_args(Some(req.args.clone()));
    if !req.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for e in &req.env {
            set_env(&mut env, e);
        }
        process.set_env(Some(env));
    }
    if let Some(cwd) = &req.cwd {
        process.set_cwd(normalise_container_path("exec working directory", cwd)?.into());
    }
    if let Some((uid, gid)) = req.user {
        let user: User = oci(UserBuilder::default().uid(uid).gid(gid).build())?;
        process.set_user(user);
    }
    process.set_terminal(Some(false));
    process.set_console_size(None);
    Ok(process)
}
