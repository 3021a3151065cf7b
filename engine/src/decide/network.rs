//! Decisions about networks: names unique, subnets that do not overlap, bridges not
//! shared, and no deletion while a container is configured on the network.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};

use crate::event::{Event, NetworkCreated, NetworkDeleted};
use crate::ids::{validate_labels, Labels};
use crate::network::{NetworkConfig, Subnet};
use crate::state::State;
use crate::{EngineError, Result};

/// The bridge of a network named `name` when none is given: `bn-` and ten hex digits
/// of the name's SHA-256 (a Linux interface name has at most 15 characters).
pub fn default_bridge(name: &str) -> String {
    let d = crate::ids::Digest::of_bytes(name.as_bytes());
    format!("bn-{}", &d.hex()[..10])
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create(
    state: &State,
    name: String,
    bridge: Option<String>,
    subnet: Subnet,
    gateway: Option<Ipv4Addr>,
    labels: Labels,
    default: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let bridge = bridge.unwrap_or_else(|| default_bridge(&name));
    let mut config = NetworkConfig::new(&name, &bridge, subnet);
    config.gateway = gateway;
    config.validate()?;
    let gateway = config.gateway_addr()?;
    validate_labels(&labels)?;
    if state.networks.contains_key(&name) {
        return Err(EngineError::AlreadyExists {
            kind: "network",
            id: name,
        });
    }
    for n in state.networks.values() {
        if n.subnet.overlaps(&subnet) {
            return Err(EngineError::FailedPrecondition(format!(
                "subnet {subnet} overlaps {} of network {}",
                n.subnet, n.name
            )));
        }
        if n.bridge == bridge {
            return Err(EngineError::FailedPrecondition(format!(
                "bridge {bridge} is used by network {}",
                n.name
            )));
        }
    }
    Ok(vec![Event::NetworkCreated(NetworkCreated {
        name,
        bridge,
        subnet,
        gateway,
        labels,
        default,
        created_at: at,
    })])
}

pub(super) fn delete(state: &State, name: String, at: DateTime<Utc>) -> Result<Vec<Event>> {
    let Some(n) = state.networks.get(&name) else {
        return Err(EngineError::NotFound {
            kind: "network",
            id: name,
        });
    };
    if n.default {
        return Err(EngineError::FailedPrecondition(format!(
            "network {name} is the default network and cannot be deleted"
        )));
    }
    let users: Vec<String> = state
        .containers
        .values()
        .filter(|c| {
            c.config.network.network() == Some(name.as_str())
                || c.attachment.as_ref().is_some_and(|a| a.network == name)
        })
        .map(|c| format!("{}/{}", c.namespace, c.name))
        .collect();
    if !users.is_empty() {
        return Err(EngineError::FailedPrecondition(format!(
            "network {name} is in use by container(s) {}; delete them first",
            users.join(", ")
        )));
    }
    Ok(vec![Event::NetworkDeleted(NetworkDeleted { name, at })])
}
