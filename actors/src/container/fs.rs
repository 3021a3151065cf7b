//! The container's files: bundle, rootfs mount, /etc files, logs. Blocking; called
//! through [`crate::storage::blocking`].

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use berth_engine::container::ContainerId;
use berth_engine::ids::NamespaceName;
use berth_engine::mount::{mount_all, unmount, Mount};
use berth_engine::oci::{self, EtcFiles, SpecInputs};
use berth_engine::state::Container;
use berth_engine::EngineError;

use super::ContainerEnv;

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let msg = format!("{what} {}", path.display());
    move |e| EngineError::Internal(format!("{msg}: {e}"))
}

fn mkdir(path: &Path, mode: u32) -> Result<(), EngineError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_err("creating", path))
}

/// Mounts the rootfs unless it is mounted already.
pub(crate) fn ensure_rootfs(
    env: &ContainerEnv,
    id: &ContainerId,
    mounts: &[Mount],
) -> Result<(), EngineError> {
    let rootfs = env.rootfs(id);
    mkdir(&rootfs, 0o755)?;
    if !berth_engine::mount::is_mount_point(&rootfs) {
        mount_all(mounts, &rootfs)?;
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), EngineError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("writing", path))?;
    f.write_all(data).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

/// The host's resolv.conf; without loopback name servers unless the container shares
/// the host's network namespace (they are unreachable from a namespace of its own).
fn resolv_conf(host_network: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept: Vec<&str> = host
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            host_network
                || !(w.next() == Some("nameserver")
                    && w.next()
                        .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Makes the bundle: directory, mounted rootfs, /etc files, `config.json` from the
/// image config and the container's configuration; and the log directory.
pub(crate) fn provision(
    env: &ContainerEnv,
    container: &Container,
    image: &berth_engine::image::Config,
    mounts: &[Mount],
    net: &super::net::SpecNet,
) -> Result<(), EngineError> {
    let id = &container.id;
    let bundle = env.bundle(id);
    mkdir(&bundle, 0o711)?;
    mkdir(&env.log_dir(id), 0o700)?;
    ensure_rootfs(env, id, mounts)?;
    let hostname = container
        .config
        .hostname
        .clone()
        .unwrap_or_else(|| id.short().to_string());
    let etc = EtcFiles {
        hosts: bundle.join("hosts"),
        resolv_conf: bundle.join("resolv.conf"),
        hostname: bundle.join("hostname"),
    };
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    write_file(&etc.hosts, hosts.as_bytes(), 0o644)?;
    write_file(&etc.resolv_conf, resolv_conf(net.host).as_bytes(), 0o644)?;
    write_file(&etc.hostname, format!("{hostname}\n").as_bytes(), 0o644)?;
    let spec = oci::generate(&SpecInputs {
        id,
        namespace: &container.namespace,
        config: &container.config,
        image,
        rootfs: &env.rootfs(id),
        netns: net.netns.as_deref(),
        host_network: net.host,
        etc_files: Some(etc),
    })?;
    oci::write_config(&bundle, &spec)
}

/// Removes what [`provision`] made (and the shim's files): unmounts the rootfs,
/// removes the bundle; with `logs`, the logs too. Missing pieces are fine.
pub(crate) fn teardown(
    env: &ContainerEnv,
    id: &ContainerId,
    logs: bool,
) -> Result<(), EngineError> {
    let rootfs = env.rootfs(id);
    if berth_engine::mount::is_mount_point(&rootfs) {
        unmount(&rootfs)?;
    }
    remove_tree(&env.bundle(id))?;
    if logs {
        remove_tree(&env.log_dir(id))?;
    }
    Ok(())
}

/// Removes a directory tree; a tree that is gone is fine. A shim finishing its own
/// clean-up (its socket, its exit record) may change the tree while it is removed, so
/// a failed attempt is retried a few times.
fn remove_tree(path: &Path) -> Result<(), EngineError> {
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt < 5 => {
                tracing::debug!(path = %path.display(), error = %e, "retrying removal");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(io_err("removing", path)(e)),
        }
    }
}

/// What the runtime knows of a container whose shim is gone; kills and deletes it if it
/// still runs. Returns whether a live container was found (and killed).
pub(crate) fn reap_orphan(env: &ContainerEnv, runtime: &Path, id: &ContainerId) -> bool {
    if !env.runtime_root().join(id.as_str()).exists() {
        // The runtime keeps a directory per container it knows: none, nothing to reap.
        return false;
    }
    let runc = berth_engine::runtime::Runc::new(runtime.to_path_buf(), env.runtime_root());
    use berth_engine::runtime::Runtime;
    let live = matches!(runc.state(id.as_str()), Ok(Some(s)) if s.pid.is_some() && s.status != berth_engine::runtime::RuntimeStatus::Stopped);
    if live {
        let _ = runc.kill(id.as_str(), 9, true);
    }
    let _ = runc.delete(id.as_str(), true);
    live
}

/// The shim configuration of `id`.
pub(crate) fn shim_config(
    env: &ContainerEnv,
    id: &ContainerId,
    runtime: &Path,
) -> berth_engine::shim::ShimConfig {
    berth_engine::shim::ShimConfig {
        id: id.to_string(),
        bundle: env.bundle(id),
        runtime: runtime.to_path_buf(),
        runtime_root: env.runtime_root(),
        socket: env.socket(id),
        exit_file: env.exit_file(id),
        log_path: env.log_path(id),
        log_max_size: env.log_max_size,
        log_max_files: env.log_max_files,
        // The daemon starts the container as soon as it is created: one runtime
        // process (`runc run --detach`) instead of `create`, then `start`.
        start: true,
    }
}

/// Launches the shim (which creates and starts the container) after making sure the
/// rootfs is mounted and no stale exit record is left. Returns the shim's and the
/// container init's pids.
pub(crate) fn launch(
    env: &ContainerEnv,
    stores: &crate::storage::Stores,
    container: &Container,
    runtime: &Path,
    mounts: &[Mount],
    net: &super::net::SpecNet,
) -> Result<berth_engine::shim::Launched, EngineError> {
    let id = &container.id;
    if env.bundle(id).join(oci::CONFIG_FILE).exists() {
        ensure_rootfs(env, id, mounts)?;
    } else {
        // The state directory is volatile (a tmpfs after a reboot): the bundle is made
        // again from the journal's record and the image's config.
        provision(
            env,
            container,
            &image_config(stores, container)?,
            mounts,
            net,
        )?;
    }
    mkdir(&env.log_dir(id), 0o700)?;
    let exit = env.exit_file(id);
    match std::fs::remove_file(&exit) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &exit)(e)),
    }
    // A runtime container of this id left by an earlier run is deleted first (the
    // runtime keeps a directory per container under its root).
    if env.runtime_root().join(id.as_str()).exists() {
        use berth_engine::runtime::Runtime;
        let runc = berth_engine::runtime::Runc::new(runtime.to_path_buf(), env.runtime_root());
        let _ = runc.delete(id.as_str(), true);
    }
    berth_engine::shim::launch(&env.shim_binary, &shim_config(env, id, runtime))
}

/// The image config a container was created from (its manifest is kept: an image in
/// use cannot be deleted, and the container's snapshot keeps its layers).
fn image_config(
    stores: &crate::storage::Stores,
    container: &Container,
) -> Result<berth_engine::image::Config, EngineError> {
    let digest = &container.config.image_digest;
    let manifest = match berth_engine::image::parse(None, &stores.read_document(digest)?)? {
        berth_engine::image::Parsed::Manifest(m) => m,
        berth_engine::image::Parsed::Index(_) => {
            return Err(EngineError::Internal(format!(
                "container {} names {digest}, an index, as its manifest",
                container.name
            )))
        }
    };
    berth_engine::image::Config::parse(&stores.read_document(&manifest.config().digest)?)
}

/// Reads the exit record a shim left.
pub(crate) fn read_exit(
    env: &ContainerEnv,
    id: &ContainerId,
) -> Option<berth_engine::container::ExitStatus> {
    berth_engine::shim::read_exit_file(&env.exit_file(id))
}

/// The namespace a label of the container's snapshot names.
pub(crate) fn snapshot_labels(ns: &NamespaceName, id: &ContainerId) -> berth_engine::ids::Labels {
    let mut l = berth_engine::ids::Labels::new();
    l.insert("berth.container".into(), id.to_string());
    l.insert("berth.namespace".into(), ns.to_string());
    l
}
