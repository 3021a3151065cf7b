//! A container's network: its namespace, its CNI attachment and its `/etc/hosts`.
//!
//! - bridge: a namespace of its own (`<state>/netns/<id>`), `lo` up, `eth0` attached
//!   by CNI at every start (intent `container.network_attach_requested`, outcome
//!   `container.network_attached` with the address) and detached (CNI DEL, namespace
//!   removed, `container.network_detached`) at every exit and at deletion;
//! - none: a namespace of its own with only `lo`, made by runc (bind-mounted under
//!   `<state>/netns` only while another container joins it, removed at its exit);
//! - host: the host's namespace, nothing to do;
//! - container:<id>: the other container's namespace, which must be running.
//!
//! The `/etc/hosts` of every container attached to a network names itself and the
//! other containers of that network; the files are rewritten in place (they are bind
//! mounts of the bundle's `hosts`) whenever a container attaches or detaches.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_engine::container::{ContainerId, NetworkMode};
use berth_engine::event::{
    ContainerNetworkAttachRequested, ContainerNetworkAttached, ContainerNetworkDetached, Event,
};
use berth_engine::network::cni::{Attachment as CniAttachment, CniResult};
use berth_engine::network::{netns, PortMapping, Protocol};
use berth_engine::state::container::Attached;
use berth_engine::state::{Container, Network, State};
use berth_engine::EngineError;
use chrono::Utc;

use super::ContainerEnv;
use crate::storage::blocking;
use crate::WriterHandle;

/// How the runtime spec places the container: join this namespace, or the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecNet {
    /// The namespace to join (`None` with `host`).
    pub(crate) netns: Option<PathBuf>,
    /// Stay in the host's namespace.
    pub(crate) host: bool,
}

/// Where the container's network namespace is, for its runtime spec.
pub(crate) fn spec_net(env: &ContainerEnv, state: &State, c: &Container) -> SpecNet {
    match &c.config.network {
        NetworkMode::Bridge { .. } => SpecNet {
            netns: Some(env.netns_path(&c.id)),
            host: false,
        },
        // runc makes a fresh namespace and brings `lo` up itself.
        NetworkMode::None => SpecNet {
            netns: None,
            host: false,
        },
        NetworkMode::Host => SpecNet {
            netns: None,
            host: true,
        },
        NetworkMode::Container { id } => {
            let host = state
                .container(&c.namespace, id)
                .is_some_and(|o| o.config.network == NetworkMode::Host);
            SpecNet {
                netns: (!host).then(|| env.netns_path(id)),
                host,
            }
        }
    }
}

/// Makes the namespace of `id` (when it is not there) with `lo` up.
fn ensure_netns(env: &ContainerEnv, id: &ContainerId) -> Result<PathBuf, EngineError> {
    let path = env.netns_path(id);
    if netns::exists(&path) {
        return Ok(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Internal(format!("creating {}: {e}", dir.display())))?;
    }
    // A file without a namespace on it (its mount gone): made again.
    netns::remove(&path)?;
    netns::create(&path)?;
    let up = env
        .cni()
        .and_then(|cni| cni.loopback_up(id.as_str(), &path));
    if let Err(e) = up {
        let _ = netns::remove(&path);
        return Err(e);
    }
    Ok(path)
}

/// Gives the network namespace of process `pid` the path `path` (a bind mount), unless
/// a namespace is mounted there already.
fn bind_netns_of(pid: u32, path: &Path) -> Result<(), EngineError> {
    if netns::exists(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Internal(format!("creating {}: {e}", dir.display())))?;
    }
    netns::remove(path)?;
    netns::bind(Path::new(&format!("/proc/{pid}/ns/net")), path)
}

/// A published port must be free on the host: portmap's DNAT would otherwise take
/// the traffic of whatever listens there.
fn check_host_ports(ports: &[PortMapping]) -> Result<(), EngineError> {
    for p in ports {
        let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let addr = std::net::SocketAddr::from((ip, p.host_port));
        let res = match p.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(addr).map(drop),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(EngineError::FailedPrecondition(format!(
                    "host port {}/{} is already in use on the host",
                    p.host_port, p.protocol
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                return Err(EngineError::InvalidArgument(format!(
                    "cannot publish {p}: {ip} is not an address of this host"
                )))
            }
            Err(e) => {
                return Err(EngineError::Internal(format!(
                    "checking host port {p}: {e}"
                )))
            }
        }
    }
    Ok(())
}

/// The network's configuration list for a container publishing `ports`: portmap only
/// when it publishes some (one plugin run fewer on each ADD and DEL otherwise).
fn conflist(
    env: &ContainerEnv,
    cni: &berth_engine::network::cni::Cni,
    network: &Network,
    ports: &[PortMapping],
) -> Result<berth_engine::network::cni::ConfList, EngineError> {
    let version = env.cni_version(cni)?;
    let mut config = network.cni_config();
    config.portmap = !ports.is_empty();
    cni.conflist(&config, &version)
}

fn cni_attachment(
    env: &ContainerEnv,
    id: &ContainerId,
    ifname: &str,
    ports: &[PortMapping],
) -> CniAttachment {
    CniAttachment {
        container_id: id.to_string(),
        netns: env.netns_path(id),
        ifname: ifname.to_string(),
        port_mappings: ports.to_vec(),
    }
}

/// CNI ADD on `eth0` of the container's namespace (made first when needed).
fn attach(
    env: &ContainerEnv,
    id: &ContainerId,
    network: &Network,
    ports: &[PortMapping],
) -> Result<CniResult, EngineError> {
    let cni = env.cni()?;
    let list = conflist(env, &cni, network, ports)?;
    check_host_ports(ports)?;
    let t0 = std::time::Instant::now();
    ensure_netns(env, id)?;
    let t1 = std::time::Instant::now();
    let result = cni.add(&list, &cni_attachment(env, id, "eth0", ports));
    tracing::debug!(
        container = %id,
        netns_ms = (t1 - t0).as_secs_f64() * 1e3,
        add_ms = t1.elapsed().as_secs_f64() * 1e3,
        "network attached"
    );
    result
}

/// CNI DEL (when attached to a network that exists), then the namespace removed unless
/// `keep_netns` (a running container lives in it).
fn detach(
    env: &ContainerEnv,
    id: &ContainerId,
    network: Option<&Network>,
    attached: Option<&Attached>,
    ports: &[PortMapping],
    keep_netns: bool,
) -> Result<(), EngineError> {
    if let Some(net) = network {
        let cni = env.cni()?;
        let list = conflist(env, &cni, net, ports)?;
        let ifname = attached.map_or("eth0", |a| a.ifname.as_str());
        let t0 = std::time::Instant::now();
        let deleted = cni.del(
            &list,
            &cni_attachment(env, id, ifname, ports),
            attached.map(|a| &a.result),
        );
        tracing::debug!(container = %id, del_ms = t0.elapsed().as_secs_f64() * 1e3, "network detached");
        deleted?;
    }
    if keep_netns {
        return Ok(());
    }
    netns::remove(&env.netns_path(id))
}

/// Verifies a live container's attachment (CNI CHECK).
pub(crate) fn check(
    env: &ContainerEnv,
    c: &Container,
    network: &Network,
) -> Result<(), EngineError> {
    let Some(att) = c.attachment.as_ref().and_then(|a| a.attached.as_ref()) else {
        return Ok(());
    };
    let cni = env.cni()?;
    let list = conflist(env, &cni, network, &att.ports)?;
    cni.check(
        &list,
        &cni_attachment(env, &c.id, &att.ifname, &att.ports),
        &att.result,
    )
}

/// The names a container answers to in `/etc/hosts`: its hostname and its name.
fn names(c: &Container) -> Vec<String> {
    let hostname = c
        .config
        .hostname
        .clone()
        .unwrap_or_else(|| c.id.short().to_string());
    let mut n = vec![hostname];
    if !n.contains(&c.name) {
        n.push(c.name.clone());
    }
    n
}

/// `/etc/hosts` of a container: localhost, itself (at its address, or 127.0.1.1),
/// then its peers.
pub(crate) fn hosts_file(
    me: &[String],
    ip: Option<Ipv4Addr>,
    peers: &[(Ipv4Addr, Vec<String>)],
) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let own = ip.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
    out.push_str(&format!("{own}\t{}\n", me.join(" ")));
    for (ip, names) in peers {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    out
}

fn write_in_place(path: &Path, data: &str) -> Result<(), EngineError> {
    use std::io::Write;
    // Truncated and written, never replaced: the container sees the file through a
    // bind mount of this inode.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| EngineError::Internal(format!("writing {}: {e}", path.display())))?;
    f.write_all(data.as_bytes())
        .map_err(|e| EngineError::Internal(format!("writing {}: {e}", path.display())))
}

/// What the `/etc/hosts` files of the containers attached to `network` (and of the
/// containers joining their namespaces) must hold, from the state.
fn hosts_of_network(env: &ContainerEnv, state: &State, network: &str) -> Vec<(PathBuf, String)> {
    let members: Vec<(&Container, Ipv4Addr)> = state
        .containers
        .values()
        .filter_map(|c| {
            let a = c.attachment.as_ref()?;
            (a.network == network).then_some(())?;
            Some((c, a.attached.as_ref()?.ip))
        })
        .collect();
    let mut out = Vec::new();
    for (c, ip) in &members {
        let peers: Vec<(Ipv4Addr, Vec<String>)> = members
            .iter()
            .filter(|(o, _)| o.id != c.id)
            .map(|(o, ip)| (*ip, names(o)))
            .collect();
        out.push((
            env.bundle(&c.id).join("hosts"),
            hosts_file(&names(c), Some(*ip), &peers),
        ));
        // Containers sharing this one's namespace see the same network.
        for j in state.containers.values().filter(|j| {
            j.namespace == c.namespace
                && j.status.is_live()
                && j.config.network == (NetworkMode::Container { id: c.id.clone() })
        }) {
            let mut me = names(j);
            me.extend(names(c));
            out.push((
                env.bundle(&j.id).join("hosts"),
                hosts_file(&me, Some(*ip), &peers),
            ));
        }
    }
    out
}

/// Rewrites the `/etc/hosts` files of `network`'s containers. A file that is not there
/// (a bundle being made or removed) is skipped.
fn refresh_hosts(env: &ContainerEnv, state: &State, network: &str) {
    for (path, data) in hosts_of_network(env, state, network) {
        if !path.exists() {
            continue;
        }
        if let Err(e) = write_in_place(&path, &data) {
            tracing::warn!(error = %e, "updating /etc/hosts");
        }
    }
}

/// Brings the container's network up before its start: see the module documentation.
/// On failure nothing stays attached.
pub(crate) async fn up(
    writer: &WriterHandle,
    env: &ContainerEnv,
    c: &Container,
) -> Result<(), EngineError> {
    match &c.config.network {
        NetworkMode::Host => Ok(()),
        NetworkMode::None => Ok(()),
        NetworkMode::Container { id: other } => {
            // A `none` container's namespace (made by runc) gets a path while others
            // join it: a bind mount of its init's, removed when it exits.
            let none_pid = {
                let state = writer.state().read();
                state
                    .container(&c.namespace, other)
                    .filter(|o| o.config.network == NetworkMode::None)
                    .and_then(|o| o.pid)
            };
            if let Some(pid) = none_pid {
                let path = env.netns_path(other);
                blocking(move || bind_netns_of(pid, &path)).await?;
            }
            let (hosts, exists) = {
                let state = writer.state().read();
                let o = state.container(&c.namespace, other);
                let ip = o
                    .and_then(|o| o.attachment.as_ref())
                    .and_then(|a| a.attached.as_ref())
                    .map(|a| a.ip);
                let mut me = names(c);
                if let Some(o) = o {
                    me.extend(names(o));
                }
                let host = o.is_some_and(|o| o.config.network == NetworkMode::Host);
                let ns_ok = host || netns::exists(&env.netns_path(other));
                (hosts_file(&me, ip, &[]), ns_ok)
            };
            if !exists {
                return Err(EngineError::FailedPrecondition(format!(
                    "the network namespace of container {other} is gone; start it again first"
                )));
            }
            let path = env.bundle(&c.id).join("hosts");
            blocking(move || write_in_place(&path, &hosts)).await
        }
        NetworkMode::Bridge { network } => {
            // An attachment left by a run whose detach failed goes first: ADD twice for
            // one container would take a second address.
            if c.attachment.is_some() {
                down(writer, env, c).await?;
            }
            add(writer, env, c, network, false).await
        }
    }
}

/// Attaches `c` to `network`: the intent, CNI ADD, the outcome, then the hosts files of
/// the network. A failed ADD is undone and recorded as detached; the namespace is kept
/// when `live` (the container runs in it).
async fn add(
    writer: &WriterHandle,
    env: &ContainerEnv,
    c: &Container,
    network: &str,
    live: bool,
) -> Result<(), EngineError> {
    let network = network.to_string();
    let net = writer
        .state()
        .read()
        .networks
        .get(&network)
        .cloned()
        .ok_or_else(|| EngineError::NotFound {
            kind: "network",
            id: network.clone(),
        })?;
    writer
        .append(vec![Event::ContainerNetworkAttachRequested(
            ContainerNetworkAttachRequested {
                namespace: c.namespace.clone(),
                id: c.id.clone(),
                network: network.clone(),
                at: Utc::now(),
            },
        )])
        .await?;
    let added = {
        let (env, id, net, ports) = (
            env.clone(),
            c.id.clone(),
            net.clone(),
            c.config.ports.clone(),
        );
        blocking(move || attach(&env, &id, &net, &ports)).await
    };
    let attached = added.and_then(|result| {
        let ip = result.container_ipv4().ok_or_else(|| {
            EngineError::Internal(format!(
                "cni gave container {} no IPv4 address on network {network}",
                c.name
            ))
        })?;
        let mac = result
            .interfaces
            .iter()
            .find(|i| !i.sandbox.is_empty())
            .map(|i| i.mac.clone())
            .unwrap_or_default();
        let gateway = result
            .ips
            .iter()
            .find(|i| i.ipv4() == Some(ip))
            .and_then(|i| i.gateway.as_deref())
            .and_then(|g| g.parse().ok());
        Ok(ContainerNetworkAttached {
            namespace: c.namespace.clone(),
            id: c.id.clone(),
            network: network.clone(),
            ifname: "eth0".into(),
            ip,
            mac,
            gateway,
            ports: c.config.ports.clone(),
            result,
            at: Utc::now(),
        })
    });
    match attached {
        Ok(ev) => {
            writer
                .append(vec![Event::ContainerNetworkAttached(ev)])
                .await?;
            let (env, state, network) = (env.clone(), writer.state().clone(), network.clone());
            blocking(move || {
                refresh_hosts(&env, &state.read(), &network);
                Ok(())
            })
            .await
        }
        Err(e) => {
            // ADD undoes itself on failure; DEL again is harmless and also
            // covers a result without an address.
            let (env2, id, ports) = (env.clone(), c.id.clone(), c.config.ports.clone());
            let undo = blocking(move || detach(&env2, &id, Some(&net), None, &ports, live)).await;
            if let Err(u) = undo {
                tracing::warn!(container = %c.id, error = %u, "undoing a failed attach");
                return Err(e);
            }
            writer.append(vec![detached(c, &network, None)]).await?;
            Err(e)
        }
    }
}

/// Takes the container's network down (after an exit, a failed start, or for its
/// deletion): CNI DEL and `container.network_detached` when it is attached, and its
/// namespace removed. Nothing to do is fine.
pub(crate) async fn down(
    writer: &WriterHandle,
    env: &ContainerEnv,
    c: &Container,
) -> Result<(), EngineError> {
    let Some(att) = c.attachment.clone() else {
        if c.config.network.owns_netns() {
            let path = env.netns_path(&c.id);
            return blocking(move || netns::remove(&path)).await;
        }
        return Ok(());
    };
    let net = writer.state().read().networks.get(&att.network).cloned();
    {
        let (env, id, ports) = (env.clone(), c.id.clone(), c.config.ports.clone());
        let attached = att.attached.clone();
        blocking(move || detach(&env, &id, net.as_ref(), attached.as_ref(), &ports, false)).await?;
    }
    writer
        .append(vec![detached(c, &att.network, att.attached.as_ref())])
        .await?;
    let (env, state, network) = (env.clone(), writer.state().clone(), att.network);
    blocking(move || {
        refresh_hosts(&env, &state.read(), &network);
        Ok(())
    })
    .await
}

/// [`down`] for container `id` as the state has it now (nothing when it is gone).
/// Wires a running container again whose attachment failed CNI CHECK (its veth or
/// address went away, e.g. while the daemon was down): CNI DEL with the recorded result,
/// keeping the namespace it runs in (its path bound again from its init if it went),
/// then ADD. The address may change; the events say so.
pub(crate) async fn rewire(
    writer: &WriterHandle,
    env: &ContainerEnv,
    c: &Container,
) -> Result<(), EngineError> {
    let Some(att) = c.attachment.clone() else {
        return Ok(());
    };
    let Some(pid) = c.pid else {
        return Err(EngineError::FailedPrecondition(format!(
            "container {} has no running process to wire",
            c.name
        )));
    };
    let net = writer.state().read().networks.get(&att.network).cloned();
    {
        let (env, id, ports) = (env.clone(), c.id.clone(), c.config.ports.clone());
        let attached = att.attached.clone();
        blocking(move || {
            bind_netns_of(pid, &env.netns_path(&id))?;
            // What is left of the attachment goes; a DEL that fails on what is already
            // gone does not stop the ADD.
            if let Err(e) = detach(&env, &id, net.as_ref(), attached.as_ref(), &ports, true) {
                tracing::warn!(container = %id, error = %e, "CNI DEL before wiring again");
            }
            Ok(())
        })
        .await?;
    }
    writer
        .append(vec![detached(c, &att.network, att.attached.as_ref())])
        .await?;
    add(writer, env, c, &att.network, true).await
}

/// The event of `c` leaving `network` (giving back its address, if it had one).
fn detached(c: &Container, network: &str, attached: Option<&Attached>) -> Event {
    Event::ContainerNetworkDetached(ContainerNetworkDetached {
        namespace: c.namespace.clone(),
        id: c.id.clone(),
        network: network.to_string(),
        ip: attached.map(|a| a.ip),
        at: Utc::now(),
    })
}

pub(crate) async fn release(
    writer: &WriterHandle,
    env: &ContainerEnv,
    namespace: &berth_engine::ids::NamespaceName,
    id: &ContainerId,
) -> Result<(), EngineError> {
    let now = writer.state().read().container(namespace, id).cloned();
    match now {
        Some(c) => down(writer, env, &c).await,
        None => Ok(()),
    }
}

/// After a daemon restart: namespaces under `<state>/netns` of containers the journal
/// does not know (or that own none now) are removed, and host-local leases of
/// containers not attached are released with CNI DEL. Returns what was cleaned.
pub(crate) fn janitor(env: &ContainerEnv, state: &State) -> (usize, usize) {
    let mut namespaces = 0;
    let dir = env.state_dir.join("netns");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let keep = ContainerId::parse(&name)
                .ok()
                .and_then(|id| state.containers.get(&id))
                .is_some_and(|c| {
                    c.status.is_live() || c.attachment.is_some() || c.pending.is_some()
                });
            if !keep {
                tracing::info!(netns = %name, "removing a network namespace no container owns");
                if netns::remove(&e.path()).is_ok() {
                    namespaces += 1;
                }
            }
        }
    }
    let mut leases = 0;
    let Ok(cni) = env.cni() else {
        return (namespaces, leases);
    };
    for net in state.networks.values() {
        // The full list (with portmap): the ports of a lease's container are unknown.
        let list = env
            .cni_version(&cni)
            .and_then(|v| cni.conflist(&net.cni_config(), &v));
        for lease in cni.leases(&net.name).unwrap_or_default() {
            let attached = ContainerId::parse(&lease.container_id)
                .ok()
                .and_then(|id| state.containers.get(&id))
                .is_some_and(|c| c.attachment.as_ref().is_some_and(|a| a.network == net.name));
            if attached {
                continue;
            }
            tracing::info!(network = %net.name, ip = %lease.ip, container = %lease.container_id, "releasing a lease no container holds");
            let del = list.as_ref().map_err(Clone::clone).and_then(|list| {
                let att = CniAttachment {
                    container_id: lease.container_id.clone(),
                    netns: dir.join(&lease.container_id),
                    ifname: lease.ifname.clone(),
                    port_mappings: Vec::new(),
                };
                cni.del(list, &att, None)
            });
            match del {
                Ok(()) => leases += 1,
                Err(e) => tracing::warn!(error = %e, "releasing a stale lease"),
            }
        }
    }
    (namespaces, leases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_itself_and_peers() {
        let f = hosts_file(
            &["abc".into(), "web".into()],
            Some("10.88.0.2".parse().unwrap()),
            &[(
                "10.88.0.3".parse().unwrap(),
                vec!["def".into(), "db".into()],
            )],
        );
        assert_eq!(
            f,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.2\tabc web\n10.88.0.3\tdef db\n"
        );
        let f = hosts_file(&["abc".into()], None, &[]);
        assert!(f.ends_with("127.0.1.1\tabc\n"), "{f}");
    }
}
