//! CNI plugin invocation, following the CNI specification 1.0
//! (<https://www.cni.dev/docs/spec/>).
//!
//! A network is a [`ConfList`]: a name, a `cniVersion` and a chain of plugins. ADD runs
//! the plugins in order, each receiving its own configuration on stdin with `name`,
//! `cniVersion`, the previous plugin's result (`prevResult`) and the runtime
//! configuration for the capabilities it declares (`portMappings`) injected; the last
//! result is the attachment's [`CniResult`], which the caller keeps (journals) and hands
//! back to [`Cni::check`] and [`Cni::del`]. DEL runs the plugins in reverse order and
//! succeeds when what it would remove is already gone (a namespace deleted first, a
//! lease already released). Plugin errors (`{"code","msg","details"}` on stdout) become
//! [`EngineError`]s naming the plugin.
//!
//! Plugins are looked up in [`CniConfig::plugin_dirs`] (Debian's `/usr/lib/cni`, then
//! `/opt/cni/bin`); host-local IPAM keeps its leases under
//! [`CniConfig::ipam_data_dir`], never in the system's `/var/lib/cni`.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{netns, validate_ifname, NetworkConfig, PortMapping};
use crate::{EngineError, ErrorKind};

/// Where the plugins are looked for by default: Debian's `containernetworking-plugins`,
/// then the upstream release tarball's location.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// The CNI specification version berth writes configurations in.
pub const CNI_VERSION: &str = "1.0.0";

/// How berth finds and runs the plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// Directories searched for plugin binaries, in order (also passed as `CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// host-local IPAM's `dataDir`: leases live in `<dir>/<network name>/<ip>`.
    pub ipam_data_dir: PathBuf,
    /// How long one plugin invocation may take before it is killed.
    pub timeout: Duration,
}

impl CniConfig {
    /// The default plugin directories, IPAM state under `ipam_data_dir`, 60 s timeout.
    pub fn new(ipam_data_dir: &Path) -> CniConfig {
        CniConfig {
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            ipam_data_dir: ipam_data_dir.to_path_buf(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A CNI network configuration list (a `.conflist`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfList {
    /// The spec version of the list and of every plugin's configuration.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network name.
    pub name: String,
    /// Each plugin's configuration (`type` names the binary), in ADD order.
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Parses and checks a conflist (name, version, every plugin's `type`).
    pub fn parse(json: &str) -> Result<ConfList, EngineError> {
        let list: ConfList = serde_json::from_str(json).map_err(|e| {
            EngineError::InvalidArgument(format!("invalid cni configuration list: {e}"))
        })?;
        list.validate()?;
        Ok(list)
    }

    /// The list as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), EngineError> {
        if self.name.is_empty() {
            return Err(EngineError::InvalidArgument(
                "invalid cni configuration list: the network name is empty".into(),
            ));
        }
        if self.plugins.is_empty() {
            return Err(EngineError::InvalidArgument(format!(
                "invalid cni configuration list {:?}: no plugins",
                self.name
            )));
        }
        for p in &self.plugins {
            plugin_type(p, &self.name)?;
        }
        Ok(())
    }
}

fn plugin_type<'a>(plugin: &'a Value, network: &str) -> Result<&'a str, EngineError> {
    let t = plugin.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = !t.is_empty()
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(t)
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid cni configuration list {network:?}: plugin type {t:?} is not a plugin name"
        )))
    }
}

impl NetworkConfig {
    /// The network as a conflist: `bridge` (gateway, masquerading, hairpin, host-local
    /// IPAM with its `dataDir` under `ipam_data_dir`, a default route), then `portmap`
    /// when enabled.
    pub fn to_conflist(
        &self,
        cni_version: &str,
        ipam_data_dir: &Path,
    ) -> Result<ConfList, EngineError> {
        self.validate()?;
        let gateway = self.gateway_addr()?;
        let mut plugins = vec![json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": self.ip_masq,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet.to_string(), "gateway": gateway.to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_data_dir.display().to_string(),
            },
        })];
        if self.portmap {
            plugins.push(json!({
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "snat": true,
            }));
        }
        Ok(ConfList {
            cni_version: cni_version.to_string(),
            name: self.name.clone(),
            plugins,
        })
    }
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`eth0` in the container, `veth…` and the bridge on the host).
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The namespace path for a container interface; empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix, `10.88.0.2/16`.
    pub address: String,
    /// The gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into the result's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix, when it is IPv4.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.address.split('/').next()?.parse().ok()
    }
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination in CIDR form.
    pub dst: String,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// A CNI result (the ADD output of the last plugin), kept by the caller and passed back
/// to CHECK and DEL as `prevResult`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CniResult {
    /// The spec version the result is written in.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created or used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes added in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS information, as the plugin returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
}

impl CniResult {
    /// The first IPv4 address assigned to an interface inside the namespace (or the
    /// first IPv4 address at all when no interface is named).
    pub fn container_ipv4(&self) -> Option<Ipv4Addr> {
        let in_sandbox = |ip: &&IpConfig| match ip.interface.and_then(|i| self.interfaces.get(i)) {
            Some(itf) => !itf.sandbox.is_empty(),
            None => true,
        };
        self.ips.iter().filter(in_sandbox).find_map(IpConfig::ipv4)
    }
}

/// A container's attachment to one network: what CNI needs to know, besides the
/// network's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: letters, digits, `_`, `.`, `-`.
    pub container_id: String,
    /// `CNI_NETNS`: the namespace's path.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface inside the namespace (`eth0`).
    pub ifname: String,
    /// Published ports, given to plugins declaring the `portMappings` capability.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

impl Attachment {
    /// An attachment on `eth0` without published ports.
    pub fn new(container_id: &str, netns: &Path) -> Attachment {
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: "eth0".into(),
            port_mappings: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), EngineError> {
        let id_ok = !self.container_id.is_empty()
            && self
                .container_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !id_ok {
            return Err(EngineError::InvalidArgument(format!(
                "invalid cni container id {:?}: letters, digits, '_', '.' and '-' only",
                self.container_id
            )));
        }
        validate_ifname(&self.ifname).map_err(|why| {
            EngineError::InvalidArgument(format!("invalid container interface name: {why}"))
        })
    }
}

/// A lease held by host-local IPAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// The container it was leased to.
    pub container_id: String,
    /// The interface it was leased for.
    pub ifname: String,
}

/// Runs CNI plugins with a [`CniConfig`].
#[derive(Debug, Clone)]
pub struct Cni {
    config: CniConfig,
}

/// What a plugin invocation is about (the `CNI_*` environment).
struct Invocation<'a> {
    command: &'static str,
    network: &'a str,
    container_id: &'a str,
    netns: Option<&'a Path>,
    ifname: &'a str,
}

impl Cni {
    /// Checks that at least one plugin directory exists.
    pub fn new(config: CniConfig) -> Result<Cni, EngineError> {
        let cni = Cni { config };
        cni.existing_dirs()?;
        Ok(cni)
    }

    /// The configuration.
    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    fn existing_dirs(&self) -> Result<Vec<&Path>, EngineError> {
        let dirs: Vec<&Path> = self
            .config
            .plugin_dirs
            .iter()
            .map(PathBuf::as_path)
            .filter(|d| d.is_dir())
            .collect();
        if dirs.is_empty() {
            return Err(EngineError::Unavailable(format!(
                "no cni plugin directory found (looked in {}); install containernetworking-plugins or configure the plugin directories",
                self.dirs_list()
            )));
        }
        Ok(dirs)
    }

    fn dirs_list(&self) -> String {
        let dirs: Vec<String> = self
            .config
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(", ")
    }

    /// The path of plugin `name`: the first plugin directory holding it.
    pub fn find_plugin(&self, name: &str) -> Result<PathBuf, EngineError> {
        for dir in self.existing_dirs()? {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(EngineError::Unavailable(format!(
            "cni plugin {name:?} not found (looked in {})",
            self.dirs_list()
        )))
    }

    /// The spec versions plugin `name` supports (`CNI_COMMAND=VERSION`).
    pub fn supported_versions(&self, name: &str) -> Result<Vec<String>, EngineError> {
        let inv = Invocation {
            command: "VERSION",
            network: "",
            container_id: "",
            netns: None,
            ifname: "",
        };
        let conf = json!({ "cniVersion": CNI_VERSION });
        let out = self.exec(name, &inv, &conf)?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| {
            EngineError::Internal(format!("cni plugin {name}: unreadable VERSION output: {e}"))
        })?;
        Ok(v.get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The spec version to write configurations in: [`CNI_VERSION`] when the bridge
    /// plugin supports it, else 0.4.0 (the first with CHECK).
    pub fn negotiate_version(&self) -> Result<String, EngineError> {
        let versions = self.supported_versions("bridge")?;
        for v in [CNI_VERSION, "0.4.0"] {
            if versions.iter().any(|s| s == v) {
                return Ok(v.to_string());
            }
        }
        Err(EngineError::Unavailable(format!(
            "cni plugin bridge supports none of {CNI_VERSION}, 0.4.0 (it supports {})",
            versions.join(", ")
        )))
    }

    /// Renders `network` with this configuration's IPAM data directory.
    pub fn conflist(
        &self,
        network: &NetworkConfig,
        cni_version: &str,
    ) -> Result<ConfList, EngineError> {
        network.to_conflist(cni_version, &self.config.ipam_data_dir)
    }

    /// Attaches a container: ADD through every plugin in order. Returns the last
    /// plugin's result. On failure the plugins are run with DEL (best effort) so that
    /// nothing half-made stays, and the first error is returned.
    pub fn add(&self, list: &ConfList, att: &Attachment) -> Result<CniResult, EngineError> {
        list.validate()?;
        att.validate()?;
        if !netns::exists(&att.netns) {
            return Err(EngineError::FailedPrecondition(format!(
                "network namespace {} does not exist",
                att.netns.display()
            )));
        }
        for plugin in &list.plugins {
            if plugin.get("type").and_then(Value::as_str) == Some("bridge") {
                if let Some(br) = plugin.get("bridge").and_then(Value::as_str) {
                    repair_bridge_mac(br)?;
                }
            }
        }
        let mut prev: Option<CniResult> = None;
        for plugin in &list.plugins {
            let name = plugin_type(plugin, &list.name)?;
            let conf = plugin_conf(list, plugin, prev.as_ref(), &att.port_mappings)?;
            let inv = Invocation {
                command: "ADD",
                network: &list.name,
                container_id: &att.container_id,
                netns: Some(&att.netns),
                ifname: &att.ifname,
            };
            let step = self.exec(name, &inv, &conf).and_then(|out| {
                serde_json::from_slice::<CniResult>(&out).map_err(|e| {
                    EngineError::Internal(format!(
                        "cni plugin {name} (network {:?}, ADD): unreadable result: {e}",
                        list.name
                    ))
                })
            });
            match step {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    if let Err(undo) = self.del(list, att, prev.as_ref()) {
                        tracing::warn!(error = %undo, network = %list.name, container = %att.container_id, "cni: undoing a failed ADD");
                    }
                    return Err(e);
                }
            }
        }
        prev.ok_or_else(|| EngineError::Internal("cni ADD ran no plugin".into()))
    }

    /// Verifies an attachment (CHECK through every plugin, with `result` — the ADD
    /// result — as `prevResult`).
    pub fn check(
        &self,
        list: &ConfList,
        att: &Attachment,
        result: &CniResult,
    ) -> Result<(), EngineError> {
        list.validate()?;
        att.validate()?;
        for plugin in &list.plugins {
            let name = plugin_type(plugin, &list.name)?;
            let conf = plugin_conf(list, plugin, Some(result), &att.port_mappings)?;
            let inv = Invocation {
                command: "CHECK",
                network: &list.name,
                container_id: &att.container_id,
                netns: Some(&att.netns),
                ifname: &att.ifname,
            };
            match self.exec(name, &inv, &conf) {
                Ok(_) => {}
                // portmap 1.1.1 checks an IPv6 DNAT chain it never made for an
                // IPv4-only container (containernetworking/plugins#819).
                Err(e)
                    if name == "portmap"
                        && e.to_string().contains("could not check ipv6 dnat")
                        && result.ips.iter().all(|ip| ip.ipv4().is_some()) =>
                {
                    tracing::debug!(error = %e, "cni: ignoring portmap's IPv6 CHECK of an IPv4-only container");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Detaches a container: DEL through every plugin in reverse order, with `result`
    /// (the ADD result, when known) as `prevResult`. Succeeds when things are already
    /// gone; a namespace that no longer exists is passed as an empty `CNI_NETNS`, so
    /// the plugins still release the address and the host-side rules. Every plugin is
    /// run even when one fails; the first error is returned.
    pub fn del(
        &self,
        list: &ConfList,
        att: &Attachment,
        result: Option<&CniResult>,
    ) -> Result<(), EngineError> {
        list.validate()?;
        att.validate()?;
        let netns = netns::exists(&att.netns).then_some(att.netns.as_path());
        let mut first_err = None;
        for plugin in list.plugins.iter().rev() {
            let step = plugin_type(plugin, &list.name).and_then(|name| {
                let conf = plugin_conf(list, plugin, result, &att.port_mappings)?;
                let inv = Invocation {
                    command: "DEL",
                    network: &list.name,
                    container_id: &att.container_id,
                    netns,
                    ifname: &att.ifname,
                };
                self.exec(name, &inv, &conf).map(drop)
            });
            if let Err(e) = step {
                first_err.get_or_insert(e);
            }
            let masq = plugin.get("type").and_then(Value::as_str) == Some("bridge")
                && plugin.get("ipMasq").and_then(Value::as_bool) == Some(true);
            if netns.is_none() && masq {
                if let Err(e) = teardown_ip_masq(&list.name, &att.container_id) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Brings `lo` up in the namespace (the loopback plugin's ADD).
    pub fn loopback_up(&self, container_id: &str, netns: &Path) -> Result<(), EngineError> {
        let att = Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: "lo".into(),
            port_mappings: Vec::new(),
        };
        let list = ConfList {
            cni_version: CNI_VERSION.into(),
            name: "lo".into(),
            plugins: vec![json!({ "type": "loopback" })],
        };
        self.add(&list, &att).map(drop)
    }

    /// The addresses host-local IPAM holds for `network` (its lease files).
    pub fn leases(&self, network: &str) -> Result<Vec<Lease>, EngineError> {
        let dir = self.config.ipam_data_dir.join(network);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(EngineError::Internal(format!(
                    "reading ipam leases in {}: {e}",
                    dir.display()
                )))
            }
        };
        let mut leases = Vec::new();
        for entry in entries.flatten() {
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let mut lines = text.lines().map(str::trim);
            leases.push(Lease {
                ip,
                container_id: lines.next().unwrap_or("").to_string(),
                ifname: lines.next().unwrap_or("").to_string(),
            });
        }
        leases.sort_by_key(|l| l.ip);
        Ok(leases)
    }

    /// Runs one plugin; returns its stdout, or its error as an [`EngineError`].
    fn exec(&self, name: &str, inv: &Invocation<'_>, conf: &Value) -> Result<Vec<u8>, EngineError> {
        let path = self.find_plugin(name)?;
        let what = if inv.network.is_empty() {
            format!("cni plugin {name} ({})", inv.command)
        } else {
            format!(
                "cni plugin {name} (network {:?}, {})",
                inv.network, inv.command
            )
        };
        let cni_path = std::env::join_paths(self.existing_dirs()?)
            .map_err(|e| EngineError::InvalidArgument(format!("cni plugin directories: {e}")))?;
        let mut cmd = Command::new(&path);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CNI_") {
                cmd.env_remove(k);
            }
        }
        // portmap and the bridge's ipMasq run iptables: make sure the sbin dirs are on PATH.
        let mut path_var = std::env::var("PATH").unwrap_or_default();
        for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            if !path_var.split(':').any(|p| p == d) {
                if !path_var.is_empty() {
                    path_var.push(':');
                }
                path_var.push_str(d);
            }
        }
        cmd.env("PATH", path_var)
            .env("CNI_COMMAND", inv.command)
            .env("CNI_CONTAINERID", inv.container_id)
            .env(
                "CNI_NETNS",
                inv.netns.map(|p| p.as_os_str()).unwrap_or_default(),
            )
            .env("CNI_IFNAME", inv.ifname)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            EngineError::Internal(format!("{what}: running {}: {e}", path.display()))
        })?;
        let input = serde_json::to_vec(conf).map_err(|e| {
            EngineError::Internal(format!("{what}: encoding its configuration: {e}"))
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin failing early closes its stdin; its error output says why.
            let _ = stdin.write_all(&input);
        }
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + self.config.timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(EngineError::Unavailable(format!(
                        "{what}: timed out after {:?}",
                        self.config.timeout
                    )));
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(EngineError::Internal(format!("{what}: waiting: {e}")));
                }
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        Err(plugin_error(&what, status, &stdout, &stderr))
    }
}

/// Gives bridge `name` a fixed address when it has none (all zeros).
///
/// The bridge plugin (1.1.1) sets the bridge's MAC "to itself" on every ADD. A bridge
/// whose first ADD failed before that step (say, an IPAM error) took its only port's
/// address and fell back to zeros when the port went, and setting zeros is refused
/// (EINVAL), so every later ADD on the network would fail with "could not set bridge's
/// mac". A locally administered address derived from the bridge name avoids that.
fn repair_bridge_mac(name: &str) -> Result<(), EngineError> {
    let sys = Path::new("/sys/class/net").join(name).join("address");
    let Ok(mac) = std::fs::read_to_string(&sys) else {
        return Ok(()); // no bridge yet: the plugin makes it
    };
    if mac.trim() != "00:00:00:00:00:00" {
        return Ok(());
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    let mac = format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    );
    run_tool(&["ip", "link", "set", "dev", name, "address", &mac])
        .map(drop)
        .map_err(|e| EngineError::Internal(format!("setting the address of bridge {name}: {e}")))
}

/// Removes the masquerading rules the bridge plugin made for a container (its
/// `CNI-<hash>` chain in the nat table and the POSTROUTING rules jumping to it).
///
/// The bridge plugin (1.1.1) finds the addresses to un-masquerade on the interface in
/// the namespace; when the namespace is already gone its DEL frees the lease but leaves
/// these rules behind. Only rules tagged with this network and container are touched.
fn teardown_ip_masq(network: &str, container_id: &str) -> Result<(), EngineError> {
    let chain = masq_chain_name(network, container_id);
    let rules = run_tool(&["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"])
        .map_err(|e| EngineError::Internal(format!("listing nat POSTROUTING rules: {e}")))?;
    let comment = format!("name: \"{network}\" id: \"{container_id}\"");
    for rule in rules
        .lines()
        .filter(|l| l.ends_with(&format!("-j {chain}")))
    {
        let mut words = rule.split_whitespace();
        let Some(source) = words.by_ref().skip_while(|w| *w != "-s").nth(1) else {
            continue;
        };
        run_tool(&[
            "iptables",
            "-w",
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            source,
            "-j",
            &chain,
            "-m",
            "comment",
            "--comment",
            &comment,
        ])
        .map_err(|e| {
            EngineError::Internal(format!("deleting masquerading rule of {container_id}: {e}"))
        })?;
    }
    let exists = run_tool(&["iptables", "-w", "-t", "nat", "-S", &chain]).is_ok();
    if exists {
        for op in ["-F", "-X"] {
            run_tool(&["iptables", "-w", "-t", "nat", op, &chain]).map_err(|e| {
                EngineError::Internal(format!("removing masquerading chain {chain}: {e}"))
            })?;
        }
    }
    Ok(())
}

/// The chain name CNI's plugins give a container (`utils.FormatChainName`):
/// `CNI-` and the first 24 hex digits of sha512(network + container id).
pub(crate) fn masq_chain_name(network: &str, container_id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = h.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("CNI-{hex}")
}

/// Runs a host tool (`ip`, `iptables`); its stdout, or its stderr as the error.
fn run_tool(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env(
            "PATH",
            "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin",
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A plugin's configuration as sent on stdin: its own object with the list's `name` and
/// `cniVersion`, `prevResult` and the `runtimeConfig` of its capabilities injected.
fn plugin_conf(
    list: &ConfList,
    plugin: &Value,
    prev: Option<&CniResult>,
    ports: &[PortMapping],
) -> Result<Value, EngineError> {
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut().ok_or_else(|| {
        EngineError::InvalidArgument(format!(
            "invalid cni configuration list {:?}: a plugin configuration is not an object",
            list.name
        ))
    })?;
    obj.insert("name".into(), Value::String(list.name.clone()));
    obj.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev {
        let v = serde_json::to_value(prev)
            .map_err(|e| EngineError::Internal(format!("encoding a cni result: {e}")))?;
        obj.insert("prevResult".into(), v);
    }
    let wants_ports = plugin
        .get("capabilities")
        .and_then(|c| c.get("portMappings"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wants_ports && !ports.is_empty() {
        let mappings: Vec<Value> = ports.iter().map(PortMapping::to_cni).collect();
        obj.insert("runtimeConfig".into(), json!({ "portMappings": mappings }));
    }
    Ok(conf)
}

/// The CNI error (`{"code","msg","details"}`) a failed plugin printed, as an error
/// naming the plugin.
fn plugin_error(
    what: &str,
    status: std::process::ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> EngineError {
    #[derive(Deserialize)]
    struct CniError {
        #[serde(default)]
        code: u64,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    let (code, text) = match serde_json::from_slice::<CniError>(stdout) {
        Ok(e) if !e.msg.is_empty() => {
            let mut text = e.msg;
            if !e.details.is_empty() && !text.contains(&e.details) {
                text = format!("{text}: {}", e.details);
            }
            (Some(e.code), text)
        }
        _ => {
            let raw = if stdout.iter().all(u8::is_ascii_whitespace) {
                stderr
            } else {
                stdout
            };
            let text = String::from_utf8_lossy(raw).trim().to_string();
            (
                None,
                if text.is_empty() {
                    status.to_string()
                } else {
                    text
                },
            )
        }
    };
    let message = match code {
        Some(c) => format!("{what} failed (code {c}): {text}"),
        None => format!("{what} failed: {text}"),
    };
    // Codes from the spec: 1 incompatible version, 2 unsupported field, 4 invalid
    // environment, 6 undecodable content, 7 invalid network config, 11 try again later.
    match code.map(error_kind) {
        Some(ErrorKind::InvalidArgument) => EngineError::InvalidArgument(message),
        Some(ErrorKind::Unavailable) => EngineError::Unavailable(message),
        _ => EngineError::Internal(message),
    }
}

fn error_kind(code: u64) -> ErrorKind {
    match code {
        1 | 2 | 4 | 6 | 7 => ErrorKind::InvalidArgument,
        11 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}
