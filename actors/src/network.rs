//! Networks (host-wide objects): creation with the host's routes in mind, deletion with
//! the bridge, and the default network made at the first start.

use actix::{ActorFutureExt, AtomicResponse, Handler, WrapFuture};
use berth_engine::event::Event;
use berth_engine::ids::Labels;
use berth_engine::network::{host, Subnet};
use berth_engine::state::State;
use berth_engine::{decide, Command, EngineError};
use chrono::Utc;

use crate::container::ContainerEnv;
use crate::messages::{CreateNetwork, DeleteNetwork, NetworkReply};
use crate::storage::blocking;
use crate::supervisor::Supervisor;
use crate::WriterHandle;

/// The events creating a network: the pure decision, then the host's routes (a subnet
/// the host already routes elsewhere — its LAN, a VPN — would cut it off).
fn create_events(
    state: &State,
    name: String,
    subnet: Subnet,
    gateway: Option<std::net::Ipv4Addr>,
    bridge: Option<String>,
    labels: Labels,
    default: bool,
) -> Result<Vec<Event>, EngineError> {
    let events = decide(
        state,
        Command::CreateNetwork {
            name: name.clone(),
            bridge,
            subnet,
            gateway,
            labels,
            default,
            at: Utc::now(),
        },
    )?;
    // Routes through berth's own bridges (this network's included) are not the host's.
    let mut own: Vec<&str> = state.networks.values().map(|n| n.bridge.as_str()).collect();
    if let Some(Event::NetworkCreated(e)) = events.first() {
        own.push(&e.bridge);
    }
    if let Some(r) = host::overlapping_route(&subnet, &own) {
        return Err(EngineError::FailedPrecondition(format!(
            "subnet {subnet} of network {name} overlaps the host's route to {} on {}",
            r.dst, r.iface
        )));
    }
    Ok(events)
}

/// Makes the default network when the journal has none of that name (first start, or
/// after the configuration named another one). A failure is logged: the daemon still
/// serves, and containers on that network fail to start with the reason.
pub async fn ensure_default(writer: &WriterHandle, env: &ContainerEnv) {
    let net = &env.network;
    let existing = writer
        .state()
        .read()
        .networks
        .get(&net.default_network)
        .cloned();
    if let Some(n) = existing {
        if n.subnet != net.default_subnet || n.bridge != net.default_bridge {
            tracing::warn!(
                network = %n.name, subnet = %n.subnet, bridge = %n.bridge,
                configured_subnet = %net.default_subnet, configured_bridge = %net.default_bridge,
                "the default network exists with another subnet or bridge; the journal's is kept"
            );
        }
        return;
    }
    let events = create_events(
        &writer.state().read(),
        net.default_network.clone(),
        net.default_subnet,
        None,
        Some(net.default_bridge.clone()),
        Labels::new(),
        true,
    );
    let res = match events {
        Ok(events) => writer.append(events).await.map(drop),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => {
            tracing::info!(network = %net.default_network, subnet = %net.default_subnet, "default network created")
        }
        Err(e) => {
            tracing::error!(network = %net.default_network, error = %e, "cannot create the default network; set [network] default_subnet")
        }
    }
}

impl Handler<CreateNetwork> for Supervisor {
    type Result = AtomicResponse<Self, Result<NetworkReply, EngineError>>;

    fn handle(&mut self, msg: CreateNetwork, _ctx: &mut Self::Context) -> Self::Result {
        let writer = self.writer().clone();
        let name = msg.name.clone();
        let events = create_events(
            &writer.state().read(),
            msg.name,
            msg.subnet,
            msg.gateway,
            msg.bridge,
            msg.labels,
            false,
        );
        AtomicResponse::new(Box::pin(
            async move {
                let committed = writer.append(events?).await?;
                let network = writer
                    .state()
                    .read()
                    .networks
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal(format!("network {name} vanished")))?;
                Ok(NetworkReply {
                    network,
                    seq: committed.last_seq(),
                })
            }
            .into_actor(self)
            .map(|r, _, _| r),
        ))
    }
}

impl Handler<DeleteNetwork> for Supervisor {
    type Result = AtomicResponse<Self, Result<u64, EngineError>>;

    fn handle(&mut self, msg: DeleteNetwork, _ctx: &mut Self::Context) -> Self::Result {
        let writer = self.writer().clone();
        let ipam = self.env().ipam_dir().join(&msg.name);
        let decided = decide(
            &writer.state().read(),
            Command::DeleteNetwork {
                name: msg.name.clone(),
                at: Utc::now(),
            },
        );
        let bridge = writer
            .state()
            .read()
            .networks
            .get(&msg.name)
            .map(|n| n.bridge.clone());
        AtomicResponse::new(Box::pin(
            async move {
                let events = decided?;
                // The bridge first: a crash after it leaves the network recorded, and
                // the bridge plugin makes the bridge again on the next attach.
                if let Some(bridge) = bridge {
                    blocking(move || {
                        host::remove_bridge(&bridge)?;
                        match std::fs::remove_dir_all(&ipam) {
                            Ok(()) => Ok(()),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                            Err(e) => Err(EngineError::Internal(format!(
                                "removing {}: {e}",
                                ipam.display()
                            ))),
                        }
                    })
                    .await?;
                }
                Ok(writer.append(events).await?.last_seq())
            }
            .into_actor(self)
            .map(|r, _, _| r),
        ))
    }
}
