//! State of networks: host-wide, by name.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::Labels;
use crate::network::{NetworkConfig, Subnet};

/// A bridge network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Name (also the CNI network name).
    pub name: String,
    /// Linux bridge on the host.
    pub bridge: String,
    /// Subnet.
    pub subnet: Subnet,
    /// Gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// Labels.
    pub labels: Labels,
    /// The daemon's default network.
    pub default: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl Network {
    /// What CNI needs to render the network's configuration list.
    pub fn cni_config(&self) -> NetworkConfig {
        let mut c = NetworkConfig::new(&self.name, &self.bridge, self.subnet);
        c.gateway = Some(self.gateway);
        c
    }
}

/// Networks by name.
pub type Networks = BTreeMap<String, Network>;

pub(super) fn apply(networks: &mut Networks, event: &Event) {
    match event {
        Event::NetworkCreated(e) => {
            networks.insert(
                e.name.clone(),
                Network {
                    name: e.name.clone(),
                    bridge: e.bridge.clone(),
                    subnet: e.subnet,
                    gateway: e.gateway,
                    labels: e.labels.clone(),
                    default: e.default,
                    created_at: e.created_at,
                },
            );
        }
        Event::NetworkDeleted(e) => {
            networks.remove(&e.name);
        }
        _ => {}
    }
}
