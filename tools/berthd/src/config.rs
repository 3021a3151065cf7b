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
    #[serde(default)]
    registry: RegistrySection,
    #[serde(default)]
    network: NetworkSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSection {
    /// Directories searched for CNI plugins.
    plugin_dirs: Option<Vec<PathBuf>>,
    /// The default network's name (`berth0`).
    default_network: Option<String>,
    /// Its bridge (`berth0`).
    default_bridge: Option<String>,
    /// Its subnet (`10.88.0.0/16`), used when it is first made.
    default_subnet: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySection {
    /// Registries reachable over plain HTTP or unverified HTTPS.
    #[serde(default)]
    insecure: Vec<String>,
    /// Whether loopback registries are insecure without being listed (default true).
    insecure_loopback: Option<bool>,
    /// Mirrors per registry, tried in order before it (pulls only).
    #[serde(default)]
    mirrors: std::collections::BTreeMap<String, Vec<String>>,
    /// `<certs_dir>/<host:port>/*.crt`.
    certs_dir: Option<PathBuf>,
    /// A docker-compatible `config.json` with `auths`.
    credentials_file: Option<PathBuf>,
    /// The registry of references that name none.
    default_registry: Option<String>,
    max_concurrent_downloads: Option<usize>,
    retries: Option<u32>,
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
    pub registry: berth_engine::registry::RegistryConfig,
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
        let net = &mut containers.network;
        if let Some(dirs) = file.network.plugin_dirs {
            net.plugin_dirs = dirs;
        }
        if let Some(n) = file.network.default_network {
            let probe = berth_engine::network::NetworkConfig::new(&n, "x", net.default_subnet);
            probe.validate().context("network.default_network")?;
            net.default_network = n;
        }
        if let Some(b) = file.network.default_bridge {
            let probe = berth_engine::network::NetworkConfig::new("x", &b, net.default_subnet);
            probe.validate().context("network.default_bridge")?;
            net.default_bridge = b;
        }
        if let Some(s) = file.network.default_subnet {
            net.default_subnet =
                berth_engine::network::Subnet::parse(&s).context("network.default_subnet")?;
        }
        let registry = registry_config(file.registry, flags.config.as_deref())?;
        Ok(Config {
            registry,
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

/// The `[registry]` section over the client's defaults: the CA directory defaults to
/// `certs.d` beside the configuration file (or `/etc/berth/certs.d`), the credentials
/// file to `/root/.docker/config.json` (what `berth login` writes).
fn registry_config(
    r: RegistrySection,
    config_file: Option<&Path>,
) -> anyhow::Result<berth_engine::registry::RegistryConfig> {
    let defaults = berth_engine::registry::RegistryConfig::default();
    let certs_dir = r.certs_dir.unwrap_or_else(|| {
        config_file
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(
                || PathBuf::from("/etc/berth/certs.d"),
                |d| d.join("certs.d"),
            )
    });
    let mut c = berth_engine::registry::RegistryConfig {
        insecure: r.insecure,
        insecure_loopback: r.insecure_loopback.unwrap_or(defaults.insecure_loopback),
        mirrors: r.mirrors,
        certs_dir: Some(certs_dir),
        credentials_file: Some(
            r.credentials_file
                .unwrap_or_else(|| PathBuf::from("/root/.docker/config.json")),
        ),
        ..defaults
    };
    c.default_registry = r.default_registry;
    if let Some(n) = r.max_concurrent_downloads {
        if n == 0 {
            bail!("registry.max_concurrent_downloads must be at least 1");
        }
        c.max_concurrent_downloads = n;
    }
    if let Some(n) = r.retries {
        c.retries = n;
    }
    // Checked as the daemon will use it.
    berth_engine::registry::RegistryClient::new(c.clone())
        .map_err(|e| anyhow::anyhow!("[registry]: {e}"))?;
    Ok(c)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> RegistrySection {
        toml::from_str::<FileConfig>(text).unwrap().registry
    }

    #[test]
    fn registry_section_defaults_and_checks() {
        let c = registry_config(section(""), None).unwrap();
        assert_eq!(c.certs_dir, Some(PathBuf::from("/etc/berth/certs.d")));
        assert_eq!(
            c.credentials_file,
            Some(PathBuf::from("/root/.docker/config.json"))
        );
        assert_eq!(c.max_concurrent_downloads, 3);
        assert!(c.insecure_loopback);

        let c = registry_config(
            section(
                "[registry]\ninsecure = [\"reg.local:5000\"]\ninsecure_loopback = false\n\
                 max_concurrent_downloads = 8\ndefault_registry = \"reg.local:5000\"\n\
                 [registry.mirrors]\n\"reg.local:5000\" = [\"http://mirror.local:5001\"]\n",
            ),
            Some(Path::new("/etc/berth/berthd.toml")),
        )
        .unwrap();
        assert_eq!(c.certs_dir, Some(PathBuf::from("/etc/berth/certs.d")));
        assert_eq!(c.insecure, vec!["reg.local:5000".to_string()]);
        assert!(!c.insecure_loopback);
        assert_eq!(c.max_concurrent_downloads, 8);
        assert_eq!(c.mirrors["reg.local:5000"].len(), 1);
        let c = registry_config(section(""), Some(Path::new("/srv/b/berthd.toml"))).unwrap();
        assert_eq!(c.certs_dir, Some(PathBuf::from("/srv/b/certs.d")));

        assert!(
            registry_config(section("[registry]\nmax_concurrent_downloads = 0\n"), None).is_err()
        );
        assert!(registry_config(
            section("[registry]\ndefault_registry = \"not a host\"\n"),
            None
        )
        .is_err());
        assert!(toml::from_str::<FileConfig>("[registry]\nnope = 1\n").is_err());
    }
}
