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
    /// Networking: CNI plugins and the default network.
    pub network: NetworkEnv,
}

/// The daemon's network settings.
#[derive(Debug, Clone)]
pub struct NetworkEnv {
    /// Directories searched for CNI plugins (Debian's `/usr/lib/cni`, then
    /// `/opt/cni/bin`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The default network's name (`bridge` and an omitted `--network` mean it).
    pub default_network: String,
    /// Its bridge.
    pub default_bridge: String,
    /// Its subnet (used when the network is first made).
    pub default_subnet: berth_engine::network::Subnet,
    /// The CNI version the plugins speak, asked once.
    pub(crate) cni_version: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Default for NetworkEnv {
    fn default() -> Self {
        NetworkEnv {
            plugin_dirs: berth_engine::network::cni::DEFAULT_PLUGIN_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            default_network: "berth0".into(),
            default_bridge: "berth0".into(),
            default_subnet: berth_engine::network::Subnet::parse("10.88.0.0/16")
                .expect("a valid subnet"),
            cni_version: Default::default(),
        }
    }
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
            network: NetworkEnv::default(),
        }
    }

    /// The bind-mounted network namespace of `id` (bridge and none modes).
    pub fn netns_path(&self, id: &ContainerId) -> PathBuf {
        self.state_dir.join("netns").join(id.as_str())
    }

    /// host-local IPAM's data directory (volatile, like the namespaces: after a reboot
    /// neither leases nor namespaces exist).
    pub fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("cni").join("ipam")
    }

    /// The CNI runner; `Unavailable` when no plugin directory exists.
    pub fn cni(&self) -> Result<berth_engine::network::cni::Cni, EngineError> {
        let mut config = berth_engine::network::cni::CniConfig::new(&self.ipam_dir());
        config.plugin_dirs = self.network.plugin_dirs.clone();
        berth_engine::network::cni::Cni::new(config)
    }

    /// The CNI version configurations are written in (negotiated with the bridge
    /// plugin once).
    pub fn cni_version(
        &self,
        cni: &berth_engine::network::cni::Cni,
    ) -> Result<String, EngineError> {
        if let Some(v) = self.network.cni_version.get() {
            return Ok(v.clone());
        }
        let v = cni.negotiate_version()?;
        Ok(self.network.cni_version.get_or_init(|| v).clone())
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
