//! Flags and the configuration file; flags win over the file, the file over defaults.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use serde::Deserialize;

/// berthd — the berth container runtime daemon.
#[derive(Debug, Parser)]
#[command(name = "berthd", version, about)]
pub struct Flags {
    /// Persistent state: journal, content, snapshots [default: /var/lib/berth]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Runtime state: sockets, bundles [default: /run/berth]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// The API's unix socket (mode 0660) [default: <state>/berth.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also serve the API on TCP (requires --token-file)
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
    /// File holding the bearer token TCP clients must send
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Configuration file (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Take a checkpoint every N journal events (0: never automatically)
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Snapshotter: overlayfs, native, or auto (overlayfs when the kernel has it)
    #[arg(long, value_name = "NAME")]
    pub snapshotter: Option<String>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    root: Option<PathBuf>,
    state: Option<PathBuf>,
    socket: Option<PathBuf>,
    tcp: Option<String>,
    token_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    snapshotter: Option<String>,
    #[serde(default)]
    journal: JournalSection,
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    containers: ContainersSection,
    /// OCI runtimes by name: `[runtimes.crun] path = "/usr/bin/crun"`.
    #[serde(default)]
    runtimes: std::collections::BTreeMap<String, RuntimeSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainersSection {
    shim_binary: Option<PathBuf>,
    default_runtime: Option<String>,
    log_max_size_mb: Option<u64>,
    log_max_files: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeSection {
    path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalSection {
    checkpoint_every: Option<u64>,
    subscriber_buffer: Option<usize>,
    cache_mb: Option<u64>,
    max_batch: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    keepalive_secs: Option<u64>,
    workers: Option<usize>,
}

/// The daemon's settled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub tcp: Option<String>,
    pub token: Option<String>,
    pub log_format: LogFormat,
    pub checkpoint_every: u64,
    pub subscriber_buffer: usize,
    pub cache_bytes: u64,
    pub max_batch: usize,
    pub keepalive_secs: u64,
    pub workers: usize,
    pub snapshotter: berth_actors::storage::SnapshotterKind,
    pub containers: berth_actors::container::ContainerEnv,
}

impl Config {
    /// Merges flags, the file named by `--config` and defaults; validates.
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let root = flags
            .root
            .or(file.root)
            .unwrap_or_else(|| "/var/lib/berth".into());
        let state = flags
            .state
            .or(file.state)
            .unwrap_or_else(|| "/run/berth".into());
        let socket = flags
            .socket
            .or(file.socket)
            .unwrap_or_else(|| state.join("berth.sock"));
        let tcp = flags.tcp.or(file.tcp);
        let token_file = flags.token_file.or(file.token_file);
        let token = match (&tcp, token_file) {
            (Some(_), None) => bail!(
                "--tcp needs --token-file: the TCP API is never served without a bearer token"
            ),
            (_, Some(f)) => Some(read_token(&f)?),
            (None, None) => None,
        };
        for (what, p) in [("root", &root), ("state", &state), ("socket", &socket)] {
            if !p.is_absolute() {
                bail!("--{what} must be an absolute path, not {}", p.display());
            }
        }
        let checkpoint_every = flags
            .checkpoint_every
            .or(file.journal.checkpoint_every)
            .unwrap_or(10_000);
        let subscriber_buffer = file.journal.subscriber_buffer.unwrap_or(131_072);
        if subscriber_buffer == 0 {
            bail!("journal.subscriber_buffer must be at least 1");
        }
        let snapshotter = berth_actors::storage::SnapshotterKind::parse(
            flags
                .snapshotter
                .as_deref()
                .or(file.snapshotter.as_deref())
                .unwrap_or("auto"),
        )?;
        let mut containers = berth_actors::container::ContainerEnv::new(&root, &state);
        if let Some(shim) = file.containers.shim_binary {
            containers.shim_binary = shim;
        }
        for (name, rt) in file.runtimes {
            berth_engine::ids::validate_name("runtime", &name)?;
            containers.runtimes.insert(name, rt.path);
        }
        if let Some(d) = file.containers.default_runtime {
            if !containers.runtimes.contains_key(&d) {
                bail!("containers.default_runtime {d:?} is not a configured runtime");
            }
            containers.default_runtime = d;
        }
        if let Some(mb) = file.containers.log_max_size_mb {
            containers.log_max_size = mb.max(1) * 1024 * 1024;
        }
        if let Some(n) = file.containers.log_max_files {
            containers.log_max_files = n;
        }
        Ok(Config {
            containers,
            snapshotter,
            root,
            state,
            socket,
            tcp,
            token,
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
            checkpoint_every,
            subscriber_buffer,
            cache_bytes: file.journal.cache_mb.unwrap_or(64) * 1024 * 1024,
            max_batch: file.journal.max_batch.unwrap_or(4096).max(1),
            keepalive_secs: file.api.keepalive_secs.unwrap_or(5).max(1),
            workers: file.api.workers.unwrap_or(2).max(1),
        })
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading token file {}", path.display()))?
        .trim()
        .to_string();
    if token.len() < 16 {
        bail!(
            "token in {} is too short (at least 16 characters)",
            path.display()
        );
    }
    Ok(token)
}
