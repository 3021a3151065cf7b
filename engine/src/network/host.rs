//! The host side of networks: the host's IPv4 routes (a new network must not overlap
//! them) and removing a network's bridge.

use std::net::Ipv4Addr;

use super::Subnet;
use crate::EngineError;

/// One IPv4 route of the host (from `/proc/net/route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// The interface.
    pub iface: String,
    /// Destination and prefix.
    pub dst: Subnet,
}

/// Parses `/proc/net/route` (addresses in the kernel's little-endian hex). The default
/// route is left out: every subnet "overlaps" it.
pub fn parse_routes(table: &str) -> Vec<HostRoute> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(u32::from_be)
            .map(Ipv4Addr::from)
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dst, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
            let prefix = u32::from(mask).leading_ones();
            if prefix == 0 {
                return None;
            }
            let dst = Subnet::parse(&format!("{dst}/{prefix}")).ok()?;
            Some(HostRoute {
                iface: (*iface).to_string(),
                dst,
            })
        })
        .collect()
}

/// The host's IPv4 routes, without the default route.
pub fn routes() -> Vec<HostRoute> {
    parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

/// A host route that `subnet` overlaps, other than through one of `own_bridges`.
pub fn overlapping_route(subnet: &Subnet, own_bridges: &[&str]) -> Option<HostRoute> {
    routes()
        .into_iter()
        .find(|r| !own_bridges.contains(&r.iface.as_str()) && r.dst.overlaps(subnet))
}

/// Whether interface `name` exists.
pub fn link_exists(name: &str) -> bool {
    !name.contains('/') && std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Removes a network's bridge (`ip link del`); one that is not there is fine.
pub fn remove_bridge(name: &str) -> Result<(), EngineError> {
    if !link_exists(name) {
        return Ok(());
    }
    let is_bridge = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("bridge")
        .exists();
    if !is_bridge {
        return Err(EngineError::FailedPrecondition(format!(
            "interface {name} is not a bridge; left alone"
        )));
    }
    let out = std::process::Command::new("ip")
        .args(["link", "del", "dev", name])
        .output()
        .map_err(|e| EngineError::Unavailable(format!("running ip (iproute2): {e}")))?;
    if !out.status.success() && link_exists(name) {
        return Err(EngineError::Internal(format!(
            "ip link del {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
berth0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = parse_routes(t);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].iface, "eth0");
        assert_eq!(r[0].dst.to_string(), "192.0.2.0/24");
        assert_eq!(r[1].dst.to_string(), "10.88.0.0/16");
        assert!(r[0].dst.overlaps(&Subnet::parse("192.0.0.0/16").unwrap()));
    }
}
