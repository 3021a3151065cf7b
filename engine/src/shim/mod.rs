//! berth-shim: one small synchronous process per started container. It creates and
//! starts the container through the OCI runtime, reaps it (child subreaper), writes its
//! stdout/stderr to a CRI-format log, records its exit durably and answers a control
//! socket ([`proto`]). It outlives `berthd`; the daemon re-attaches through the socket.
//!
//! - [`proto`]: the typed frames of the control socket.
//! - [`ShimConfig`]: what `berthd` tells a shim (written to `<bundle>/shim.json`).
//! - [`launch`] (daemon side): writes the configuration and runs `berth-shim start`,
//!   which spawns `berth-shim serve` in its own session and returns once the socket is
//!   bound and the container created (or, with [`ShimConfig::start`], started); the
//!   shim is re-parented away from the daemon.
//! - [`start`] and [`serve`]: the two commands of the `berth-shim` binary.
//! - [`ShimClient`]: one request per connection, with a timeout; tells a shim that is
//!   gone ([`ShimError::Gone`]) from other failures. [`read_exit_file`] reads the exit a
//!   shim recorded, for when it is gone.

mod cgroup;
mod client;
mod launch;
pub mod proto;
mod reaper;
mod serve;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use client::{read_exit_file, ShimClient, ShimError};
pub use launch::{launch, start, Launched, START_TIMEOUT};
pub use serve::serve;

use crate::EngineError;

/// Name of the shim's configuration file in the bundle.
pub const CONFIG_FILE: &str = "shim.json";

/// Name of the shim's own diagnostics (its stderr) in the bundle.
pub const LOG_FILE: &str = "shim.log";

/// Name of the file in the bundle the runtime writes the container's init pid to.
pub const PID_FILE: &str = "init.pid";

/// Everything a shim needs, written by `berthd` to `<bundle>/shim.json` before the
/// shim is launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// Container id (also the runtime's container id).
    pub id: String,
    /// The OCI bundle (holds `config.json` and `rootfs/`, already mounted).
    pub bundle: PathBuf,
    /// The OCI runtime binary (e.g. `runc` or an absolute path).
    pub runtime: PathBuf,
    /// The runtime's state root (`runc --root`).
    pub runtime_root: PathBuf,
    /// The control socket to listen on.
    pub socket: PathBuf,
    /// Where the exit status is recorded (temp file, fsync, rename).
    pub exit_file: PathBuf,
    /// The container's log (CRI format), rotated by size.
    pub log_path: PathBuf,
    /// Rotate the log when it exceeds this many bytes.
    pub log_max_size: u64,
    /// Rotated files kept (`container.log.1` …).
    pub log_max_files: u32,
    /// Start the container's process at once (`runc run --detach`, one runtime process)
    /// instead of leaving it created until a [`proto::Request::Start`] (`runc create`,
    /// then `runc start`). Absent in older configurations: `false`.
    #[serde(default)]
    pub start: bool,
}

impl ShimConfig {
    /// Reads `<bundle>/shim.json`.
    pub fn load(bundle: &Path) -> Result<ShimConfig, EngineError> {
        let path = bundle.join(CONFIG_FILE);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                EngineError::Missing(format!("shim configuration {} not found", path.display()))
            } else {
                EngineError::Internal(format!("read {}: {e}", path.display()))
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::InvalidArgument(format!("shim configuration {}: {e}", path.display()))
        })
    }

    /// Writes it to `<bundle>/shim.json` durably.
    pub fn save(&self) -> Result<(), EngineError> {
        let path = self.bundle.join(CONFIG_FILE);
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| EngineError::Internal(format!("encode {}: {e}", path.display())))?;
        write_durable(&path, &body)
            .map_err(|e| EngineError::Internal(format!("write {}: {e}", path.display())))
    }
}

/// Writes `bytes` to `path` so that after a crash it holds either the old or the new
/// content: a temporary file beside it, fsync, rename, fsync of the directory.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
