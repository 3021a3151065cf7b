//! Where containers live on disk and what runs them: paths of bundles, shim sockets,
//! exit records and logs; the shim binary; the configured OCI runtimes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine::container::ContainerId;
use berth_engine::EngineError;

/// The daemon's container settings.
#[derive(Debug, Clone)]
pub struct ContainerEnv {
    /// `--state`: bundles (`containers/<id>`), the runtime root (`runc`).
    pub state_dir: PathBuf,
    /// `<root>/containers`: logs (kept across reboots).
    pub logs_dir: PathBuf,
    /// The `berth-shim` binary.
    pub shim_binary: PathBuf,
    /// OCI runtimes by name (`runc` → `runc` in PATH unless configured).
    pub runtimes: BTreeMap<String, PathBuf>,
    /// The runtime used when a container names none.
    pub default_runtime: String,
    /// Rotate a container's log past this many bytes.
    pub log_max_size: u64,
    /// Rotated log files kept.
    pub log_max_files: u32,
}

impl ContainerEnv {
    /// Settings with defaults for `root` and `state`: `runc` from PATH, the shim next
    /// to the running executable, logs rotated at 10 MiB keeping 2 files.
    pub fn new(root: &Path, state: &Path) -> ContainerEnv {
        let shim_binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("berth-shim")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("berth-shim"));
        let mut runtimes = BTreeMap::new();
        runtimes.insert("runc".to_string(), PathBuf::from("runc"));
        ContainerEnv {
            state_dir: state.to_path_buf(),
            logs_dir: root.join("containers"),
            shim_binary,
            runtimes,
            default_runtime: "runc".into(),
            log_max_size: 10 << 20,
            log_max_files: 2,
        }
    }

    /// The OCI bundle of `id`.
    pub fn bundle(&self, id: &ContainerId) -> PathBuf {
        self.state_dir.join("containers").join(id.as_str())
    }

    /// The bundle's rootfs mount point.
    pub fn rootfs(&self, id: &ContainerId) -> PathBuf {
        self.bundle(id).join("rootfs")
    }

    /// The shim's control socket.
    pub fn socket(&self, id: &ContainerId) -> PathBuf {
        self.bundle(id).join("shim.sock")
    }

    /// The shim's exit record.
    pub fn exit_file(&self, id: &ContainerId) -> PathBuf {
        self.bundle(id).join("exit.json")
    }

    /// The directory of `id`'s logs.
    pub fn log_dir(&self, id: &ContainerId) -> PathBuf {
        self.logs_dir.join(id.as_str())
    }

    /// The current log file of `id`.
    pub fn log_path(&self, id: &ContainerId) -> PathBuf {
        self.log_dir(id).join("container.log")
    }

    /// The runtime's state root.
    pub fn runtime_root(&self) -> PathBuf {
        self.state_dir.join("runc")
    }

    /// The binary of runtime `name`.
    pub fn runtime_binary(&self, name: &str) -> Result<&Path, EngineError> {
        self.runtimes
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "unknown runtime {name:?}; configured: {}",
                    self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }
}
