//! Container networking: network namespaces and the CNI plugins that wire them.
//!
//! - [`netns`]: network namespaces owned by berth, each kept alive by a bind mount of
//!   its nsfs file (as `ip netns add` does): [`netns::create`], [`netns::remove`],
//!   [`netns::exists`].
//! - [`cni`]: invocation of the standard CNI plugins (Debian's
//!   `containernetworking-plugins`) following the CNI spec 1.0: a [`NetworkConfig`]
//!   rendered to a [`cni::ConfList`] (bridge + host-local IPAM, then portmap), and
//!   [`cni::Cni::add`] / [`cni::Cni::check`] / [`cni::Cni::del`] /
//!   [`cni::Cni::loopback_up`]. The ADD result ([`cni::CniResult`]) is returned for the
//!   caller to journal; DEL and CHECK take it back.
//! - This file: the pure parts — [`Subnet`] (IPv4 CIDR parsing, overlap checks, default
//!   gateway), [`PortMapping`] with [`parse_publish`] (`-p 18080:80/tcp`), and
//!   [`NetworkConfig`].
//!
//! IPv4 only: subnets, gateways and published host addresses are [`Ipv4Addr`]s.

pub mod cni;
pub mod host;
pub mod netns;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// An IPv4 subnet in CIDR form, validated: the address is the network address (no
/// host bits set) and the prefix is at most 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// Parses `10.88.0.0/16`. Refuses host bits (`10.88.0.1/16`), a missing or too long
    /// prefix and anything that is not IPv4.
    pub fn parse(s: &str) -> Result<Subnet, EngineError> {
        let bad = |why: &str| EngineError::InvalidArgument(format!("invalid subnet {s:?}: {why}"));
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.88.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 address (only IPv4 is supported)"))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the prefix length must be a number from 0 to 32"));
        }
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("the prefix length must be a number from 0 to 32"))?;
        let subnet = Subnet { addr, prefix };
        if subnet.network() != addr {
            return Err(bad(&format!(
                "host bits are set; did you mean {}/{prefix}?",
                subnet.network()
            )));
        }
        Ok(subnet)
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & Self::mask(self.prefix))
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address (the last address of the subnet).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !Self::mask(self.prefix))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        let m = Self::mask(shorter);
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The default gateway, the first host address (`.1` of a /24); `None` when the
    /// subnet is too small for a gateway and a container (prefix longer than 30).
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        if self.prefix > 30 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.addr) + 1))
    }

    /// Whether `ip` is a usable host address of the subnet (neither the network nor
    /// the broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network() && ip != self.broadcast()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subnet::parse(s)
    }
}

impl TryFrom<String> for Subnet {
    type Error = EngineError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Subnet::parse(&s)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as CNI's portmap plugin spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published port: connections to `host_ip:host_port` (every host address when
/// `host_ip` is `None`) are forwarded to the container's `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address it is published on; `None` for all of them.
    pub host_ip: Option<Ipv4Addr>,
}

impl PortMapping {
    /// Whether two mappings would claim the same host port: same protocol and port,
    /// and host addresses that are equal or unspecified on either side.
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The mapping as the portmap plugin's `runtimeConfig.portMappings` entry.
    pub fn to_cni(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.as_str(),
        });
        if let Some(ip) = self.host_ip {
            v["hostIP"] = serde_json::Value::String(ip.to_string());
        }
        v
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// Parses a `-p` argument: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`, e.g.
/// `18080:80`, `18080:80/udp`, `127.0.0.1:18080:80/tcp`. Ports are 1 to 65535.
pub fn parse_publish(s: &str) -> Result<PortMapping, EngineError> {
    let bad = |why: &str| {
        EngineError::InvalidArgument(format!(
            "invalid published port {s:?}: {why} (expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp])"
        ))
    };
    let (ports, protocol) = match s.rsplit_once('/') {
        None => (s, Protocol::Tcp),
        Some((p, "tcp")) => (p, Protocol::Tcp),
        Some((p, "udp")) => (p, Protocol::Udp),
        Some(_) => return Err(bad("the protocol must be tcp or udp")),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host_port, container_port) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad("the host address is not an IPv4 address"))?;
            (Some(ip), *h, *c)
        }
        _ => return Err(bad("wrong number of fields")),
    };
    let port = |p: &str, what: &str| -> Result<u16, EngineError> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("the {what} port is not a number")));
        }
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("the {what} port must be from 1 to 65535")))
    };
    Ok(PortMapping {
        host_port: port(host_port, "host")?,
        container_port: port(container_port, "container")?,
        protocol,
        host_ip,
    })
}

/// A bridge network: what berth needs to render a CNI configuration list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The network's name (the CNI network name; host-local keeps its leases under it).
    pub name: String,
    /// The Linux bridge on the host (at most 15 characters).
    pub bridge: String,
    /// The subnet containers get their addresses from.
    pub subnet: Subnet,
    /// The bridge's address and the containers' default route; the subnet's first
    /// address when `None`.
    pub gateway: Option<Ipv4Addr>,
    /// Masquerade traffic from the containers leaving the subnet.
    pub ip_masq: bool,
    /// Include the portmap plugin (published ports).
    pub portmap: bool,
}

impl NetworkConfig {
    /// A network with berth's defaults: gateway `.1`, masquerading and portmap on.
    pub fn new(name: &str, bridge: &str, subnet: Subnet) -> NetworkConfig {
        NetworkConfig {
            name: name.to_string(),
            bridge: bridge.to_string(),
            subnet,
            gateway: None,
            ip_masq: true,
            portmap: true,
        }
    }

    /// Checks the name, bridge name, subnet and gateway.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |why: String| {
            EngineError::InvalidArgument(format!("invalid network {:?}: {why}", self.name))
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(bad(
                "the name must be 1 to 64 letters, digits, '_', '.' or '-'".into(),
            ));
        }
        validate_ifname(&self.bridge).map_err(|why| bad(format!("bridge name: {why}")))?;
        self.gateway_addr()?;
        Ok(())
    }

    /// The gateway: the configured one (which must be a host address of the subnet) or
    /// the subnet's default.
    pub fn gateway_addr(&self) -> Result<Ipv4Addr, EngineError> {
        match self.gateway {
            Some(gw) if self.subnet.is_host(gw) && self.subnet.prefix() <= 30 => Ok(gw),
            Some(gw) => Err(EngineError::InvalidArgument(format!(
                "invalid network {:?}: gateway {gw} is not a host address of {}",
                self.name, self.subnet
            ))),
            None => self.subnet.default_gateway().ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "invalid network {:?}: subnet {} is too small (the prefix must be at most 30)",
                    self.name, self.subnet
                ))
            }),
        }
    }
}

/// Checks a Linux interface name (bridge, container interface): 1 to 15 bytes, no
/// `/`, `:` or whitespace, not `.` or `..`.
pub(crate) fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("{name:?} must be 1 to 15 characters"));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}
