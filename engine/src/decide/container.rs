//! Decisions about containers: each command checks the container's status with the
//! `can_*` predicates of [`crate::state::Status`] and yields the intent event. Outcomes
//! (started, exited, …) are facts the container actor records as they happen.

use chrono::{DateTime, Utc};

use crate::container::{ContainerConfig, ContainerId, NetworkMode};
use crate::event::{
    ContainerCreateRequested, ContainerDeleteRequested, ContainerRef, ContainerSignal,
    ContainerStopRequested, Event,
};
use crate::ids::{validate_labels, validate_name, NamespaceName};
use crate::state::{Container, State, Status};
use crate::{EngineError, Result};

/// The key of a container's active snapshot.
pub fn snapshot_key(id: &ContainerId) -> String {
    format!("container-{id}")
}

fn existing<'a>(state: &'a State, ns: &NamespaceName, id: &ContainerId) -> Result<&'a Container> {
    state
        .container(ns, id)
        .ok_or_else(|| EngineError::NotFound {
            kind: "container",
            id: id.to_string(),
        })
}

fn refuse(c: &Container, what: &str) -> EngineError {
    let detail = match c.pending.as_deref() {
        Some(op) => format!("{} ({op} in progress)", c.status.as_str()),
        None => c.status.as_str().to_string(),
    };
    EngineError::FailedPrecondition(format!(
        "cannot {what} container {}: it is {detail}",
        c.name
    ))
}

fn busy(c: &Container) -> bool {
    matches!(c.pending.as_deref(), Some("create" | "delete"))
}

pub(super) fn create(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    name: Option<String>,
    config: Box<ContainerConfig>,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    if !state.namespaces.contains_key(&namespace) {
        return Err(EngineError::NotFound {
            kind: "namespace",
            id: namespace.to_string(),
        });
    }
    if state.containers.contains_key(&id) {
        return Err(EngineError::AlreadyExists {
            kind: "container",
            id: id.to_string(),
        });
    }
    let name = name.unwrap_or_else(|| id.short().to_string());
    validate_name("container", &name)?;
    validate_labels(&config.labels)?;
    if state
        .containers
        .values()
        .any(|c| c.namespace == namespace && c.name == name)
    {
        return Err(EngineError::AlreadyExists {
            kind: "container",
            id: name,
        });
    }
    if state.storage.image(&namespace, &config.image).is_none() {
        return Err(EngineError::NotFound {
            kind: "image",
            id: config.image.to_string(),
        });
    }
    check_network(state, &namespace, &config)?;
    Ok(vec![Event::ContainerCreateRequested(
        ContainerCreateRequested {
            snapshot_key: snapshot_key(&id),
            namespace,
            id,
            name,
            config,
            at,
        },
    )])
}

/// The network mode names what exists; ports only with a bridge network, and never the
/// same host port twice in one container.
fn check_network(state: &State, namespace: &NamespaceName, config: &ContainerConfig) -> Result<()> {
    match &config.network {
        NetworkMode::Bridge { network } => {
            if !state.networks.contains_key(network) {
                return Err(EngineError::NotFound {
                    kind: "network",
                    id: network.clone(),
                });
            }
        }
        NetworkMode::Container { id } => {
            if state.container(namespace, id).is_none() {
                return Err(EngineError::NotFound {
                    kind: "container",
                    id: id.to_string(),
                });
            }
        }
        NetworkMode::None | NetworkMode::Host => {}
    }
    if !config.ports.is_empty() && config.network.network().is_none() {
        return Err(EngineError::InvalidArgument(format!(
            "ports can only be published on a bridge network, not with network {}",
            config.network.describe()
        )));
    }
    for (i, p) in config.ports.iter().enumerate() {
        if let Some(q) = config.ports[..i].iter().find(|q| q.conflicts(p)) {
            return Err(EngineError::InvalidArgument(format!(
                "published ports {q} and {p} claim the same host port"
            )));
        }
    }
    Ok(())
}

fn reference(namespace: NamespaceName, id: ContainerId, at: DateTime<Utc>) -> ContainerRef {
    ContainerRef { namespace, id, at }
}

/// An intent that needs nothing but the container's status to allow it.
fn simple(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    at: DateTime<Utc>,
    verb: &str,
    allowed: fn(&Container) -> bool,
    intent: fn(ContainerRef) -> Event,
) -> Result<Vec<Event>> {
    let c = existing(state, &namespace, &id)?;
    if !allowed(c) || busy(c) {
        return Err(refuse(c, verb));
    }
    Ok(vec![intent(reference(namespace, id, at))])
}

pub(super) fn start(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let allowed = |c: &Container| c.status.can_start() && c.pending.as_deref() != Some("start");
    let events = simple(
        state,
        namespace.clone(),
        id.clone(),
        at,
        "start",
        allowed,
        Event::ContainerStartRequested,
    )?;
    let c = existing(state, &namespace, &id)?;
    if let NetworkMode::Container { id: other } = &c.config.network {
        let live = state
            .container(&namespace, other)
            .is_some_and(|o| o.status.is_live());
        if !live {
            return Err(EngineError::FailedPrecondition(format!(
                "cannot start container {}: it joins the network of container {}, which is not running",
                c.name,
                state
                    .container(&namespace, other)
                    .map_or_else(|| other.to_string(), |o| o.name.clone())
            )));
        }
    }
    for p in &c.config.ports {
        let taken = state.containers.values().find(|o| {
            o.id != c.id && o.attachment.is_some() && o.config.ports.iter().any(|q| q.conflicts(p))
        });
        if let Some(o) = taken {
            return Err(EngineError::FailedPrecondition(format!(
                "cannot start container {}: host port {}/{} is already published by container {}/{}",
                c.name, p.host_port, p.protocol, o.namespace, o.name
            )));
        }
    }
    Ok(events)
}

pub(super) fn stop(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    signal: i32,
    timeout_secs: u64,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let c = existing(state, &namespace, &id)?;
    if !c.status.can_stop() || busy(c) {
        return Err(refuse(c, "stop"));
    }
    Ok(vec![Event::ContainerStopRequested(
        ContainerStopRequested {
            namespace,
            id,
            signal,
            timeout_secs,
            at,
        },
    )])
}

pub(super) fn kill(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    signal: i32,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let c = existing(state, &namespace, &id)?;
    if !c.status.can_kill() || busy(c) {
        return Err(refuse(c, "kill"));
    }
    Ok(vec![Event::ContainerKillRequested(ContainerSignal {
        namespace,
        id,
        signal,
        at,
    })])
}

pub(super) fn pause(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let allowed = |c: &Container| c.status.can_pause();
    simple(
        state,
        namespace,
        id,
        at,
        "pause",
        allowed,
        Event::ContainerPauseRequested,
    )
}

pub(super) fn resume(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let allowed = |c: &Container| c.status.can_resume();
    simple(
        state,
        namespace,
        id,
        at,
        "resume",
        allowed,
        Event::ContainerResumeRequested,
    )
}

pub(super) fn delete(
    state: &State,
    namespace: NamespaceName,
    id: ContainerId,
    force: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>> {
    let c = existing(state, &namespace, &id)?;
    if c.status == Status::Creating {
        return Err(refuse(c, "delete"));
    }
    if !c.status.can_delete() && !force {
        return Err(EngineError::FailedPrecondition(format!(
            "cannot delete container {}: it is {}; stop it first or force the deletion",
            c.name,
            c.status.as_str()
        )));
    }
    Ok(vec![Event::ContainerDeleteRequested(
        ContainerDeleteRequested {
            namespace,
            id,
            force,
            at,
        },
    )])
}

#[cfg(test)]
mod tests {
    //! Given / when / then, no IO.
    use super::*;
    use crate::container::{ExitStatus, Resources, RestartPolicy};
    use crate::decide::{decide, genesis, Command};
    use crate::event::{ContainerExited, ContainerStarted, ImageStored, Target};
    use crate::ids::{Digest, ImageName, Labels};

    fn ns() -> NamespaceName {
        NamespaceName::default_ns()
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            image: ImageName::parse("busybox").unwrap(),
            image_digest: Digest::of_bytes(b"m"),
            entrypoint: None,
            cmd: Some(vec!["true".into()]),
            env: vec![],
            working_dir: None,
            user: None,
            hostname: None,
            labels: Labels::new(),
            mounts: vec![],
            read_only: false,
            resources: Resources::default(),
            restart: RestartPolicy::No,
            runtime: "runc".into(),
            stop_timeout: 10,
            stop_signal: None,
            network: Default::default(),
            ports: Vec::new(),
        }
    }

    fn given(events: &[Event]) -> State {
        let mut s = State::new();
        for (i, e) in events.iter().enumerate() {
            s.apply_at(u64::try_from(i).unwrap() + 1, e);
        }
        s
    }

    fn base() -> Vec<Event> {
        let now = Utc::now();
        let mut events = genesis(&State::new(), now);
        events.push(Event::ImageStored(ImageStored {
            namespace: ns(),
            name: ImageName::parse("busybox").unwrap(),
            target: Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: Digest::of_bytes(b"m"),
                size: 1,
            },
            labels: Labels::new(),
            at: now,
        }));
        events
    }

    fn create_cmd(id: &ContainerId, name: Option<&str>) -> Command {
        Command::CreateContainer {
            namespace: ns(),
            id: id.clone(),
            name: name.map(str::to_string),
            config: Box::new(config()),
            at: Utc::now(),
        }
    }

    #[test]
    fn lifecycle() {
        let id = ContainerId::generate();
        let mut ev = base();
        ev.extend(decide(&given(&ev), create_cmd(&id, Some("web"))).unwrap());
        let s = given(&ev);
        assert_eq!(s.container(&ns(), &id).unwrap().status, Status::Creating);
        // Not startable until created.
        let start = || Command::StartContainer {
            namespace: ns(),
            id: id.clone(),
            at: Utc::now(),
        };
        assert!(decide(&s, start()).is_err());
        ev.push(Event::ContainerCreated(ContainerRef {
            namespace: ns(),
            id: id.clone(),
            at: Utc::now(),
        }));
        ev.extend(decide(&given(&ev), start()).unwrap());
        ev.push(Event::ContainerStarted(ContainerStarted {
            namespace: ns(),
            id: id.clone(),
            pid: 42,
            shim_pid: 41,
            at: Utc::now(),
        }));
        let s = given(&ev);
        assert_eq!(
            s.find_container(&ns(), "web").unwrap().status,
            Status::Running
        );
        assert_eq!(s.find_container(&ns(), &id.as_str()[..6]).unwrap().id, id);
        let err = decide(&s, start()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
        assert!(err.to_string().contains("running"), "{err}");
        // Running: delete needs force.
        let del = |force| Command::DeleteContainer {
            namespace: ns(),
            id: id.clone(),
            force,
            at: Utc::now(),
        };
        assert!(decide(&s, del(false)).is_err());
        assert!(decide(&s, del(true)).is_ok());
        // Same name again refused; image in use refused.
        let other = ContainerId::generate();
        assert_eq!(
            decide(&s, create_cmd(&other, Some("web")))
                .unwrap_err()
                .kind(),
            crate::ErrorKind::AlreadyExists
        );
        let err = decide(
            &s,
            Command::DeleteImage {
                namespace: ns(),
                name: ImageName::parse("busybox").unwrap(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("used by container web"), "{err}");
        // Exit, then deletion without force.
        ev.extend(
            decide(
                &s,
                Command::StopContainer {
                    namespace: ns(),
                    id: id.clone(),
                    signal: 15,
                    timeout_secs: 1,
                    at: Utc::now(),
                },
            )
            .unwrap(),
        );
        ev.push(Event::ContainerExited(ContainerExited {
            namespace: ns(),
            id: id.clone(),
            exit: ExitStatus {
                code: Some(143),
                signal: Some(15),
                oom_killed: false,
                at: Utc::now(),
            },
            reason: None,
        }));
        let s = given(&ev);
        let c = s.container(&ns(), &id).unwrap();
        assert_eq!(c.status, Status::Stopped);
        assert!(c.stopped_by_user);
        assert_eq!(c.pending, None);
        ev.extend(decide(&s, del(false)).unwrap());
        ev.push(Event::ContainerDeleted(ContainerRef {
            namespace: ns(),
            id: id.clone(),
            at: Utc::now(),
        }));
        assert!(given(&ev).containers.is_empty());
    }

    #[test]
    fn unknown_image_and_namespace() {
        let s = given(&base());
        let mut cmd = create_cmd(&ContainerId::generate(), None);
        if let Command::CreateContainer { config, .. } = &mut cmd {
            config.image = ImageName::parse("nope").unwrap();
        }
        assert_eq!(
            decide(&s, cmd).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        let mut cmd = create_cmd(&ContainerId::generate(), Some("bad name"));
        assert_eq!(
            decide(&s, cmd.clone()).unwrap_err().kind(),
            crate::ErrorKind::InvalidArgument
        );
        if let Command::CreateContainer {
            namespace, name, ..
        } = &mut cmd
        {
            *namespace = NamespaceName::parse("ghost").unwrap();
            *name = None;
        }
        assert_eq!(
            decide(&s, cmd).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }

    fn network(name: &str, subnet: &str) -> Command {
        Command::CreateNetwork {
            name: name.into(),
            bridge: None,
            subnet: crate::network::Subnet::parse(subnet).unwrap(),
            gateway: None,
            labels: Labels::new(),
            default: name == "berth0",
            at: Utc::now(),
        }
    }

    #[test]
    fn networks_subnets_ports_and_use() {
        let mut ev = base();
        ev.extend(decide(&given(&ev), network("berth0", "10.88.0.0/16")).unwrap());
        ev.extend(decide(&given(&ev), network("web", "10.89.0.0/24")).unwrap());
        let s = given(&ev);
        assert_eq!(s.networks["web"].gateway.to_string(), "10.89.0.1");
        assert!(s.networks["web"].bridge.starts_with("bn-"));
        assert_eq!(s.networks["web"].bridge.len(), 13);
        // Name taken, overlapping subnet, bridge taken.
        let err = decide(&s, network("web", "10.90.0.0/24")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::AlreadyExists);
        let err = decide(&s, network("other", "10.88.4.0/24")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
        assert!(
            err.to_string()
                .contains("overlaps 10.88.0.0/16 of network berth0"),
            "{err}"
        );
        let mut same_bridge = network("other", "10.91.0.0/24");
        if let Command::CreateNetwork { bridge, .. } = &mut same_bridge {
            *bridge = Some(s.networks["web"].bridge.clone());
        }
        let err = decide(&s, same_bridge).unwrap_err();
        assert!(err.to_string().contains("is used by network web"), "{err}");
        let err = decide(&s, network("bad name!", "10.92.0.0/24")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        // Containers: the network must exist; ports only on a bridge; no duplicates.
        let with = |mode: NetworkMode, ports: &[&str]| {
            let id = ContainerId::generate();
            let mut cmd = create_cmd(&id, None);
            if let Command::CreateContainer { config, .. } = &mut cmd {
                config.network = mode;
                config.ports = ports
                    .iter()
                    .map(|p| crate::network::parse_publish(p).unwrap())
                    .collect();
            }
            (id, cmd)
        };
        let bridge = |n: &str| NetworkMode::Bridge { network: n.into() };
        let err = decide(&s, with(bridge("ghost"), &[]).1).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        let err = decide(&s, with(NetworkMode::Host, &["8080:80"]).1).unwrap_err();
        assert!(
            err.to_string().contains("only be published on a bridge"),
            "{err}"
        );
        let err = decide(&s, with(bridge("web"), &["8080:80", "8080:81"]).1).unwrap_err();
        assert!(err.to_string().contains("same host port"), "{err}");
        let (a, cmd) = with(bridge("web"), &["8080:80"]);
        ev.extend(decide(&s, cmd).unwrap());
        ev.push(Event::ContainerCreated(ContainerRef {
            namespace: ns(),
            id: a.clone(),
            at: Utc::now(),
        }));
        let (b, cmd) = with(bridge("berth0"), &["8080:90"]);
        ev.extend(decide(&given(&ev), cmd).unwrap());
        ev.push(Event::ContainerCreated(ContainerRef {
            namespace: ns(),
            id: b.clone(),
            at: Utc::now(),
        }));
        let start = |id: &ContainerId| Command::StartContainer {
            namespace: ns(),
            id: id.clone(),
            at: Utc::now(),
        };
        // a is attached: b cannot start with the same host port.
        ev.extend(decide(&given(&ev), start(&a)).unwrap());
        ev.push(Event::ContainerNetworkAttachRequested(
            crate::event::ContainerNetworkAttachRequested {
                namespace: ns(),
                id: a.clone(),
                network: "web".into(),
                at: Utc::now(),
            },
        ));
        let s = given(&ev);
        let err = decide(&s, start(&b)).unwrap_err();
        assert!(
            err.to_string().contains("already published by container"),
            "{err}"
        );
        // Joining a container that does not run is refused at start.
        let (c, cmd) = with(NetworkMode::Container { id: b.clone() }, &[]);
        ev.extend(decide(&s, cmd).unwrap());
        ev.push(Event::ContainerCreated(ContainerRef {
            namespace: ns(),
            id: c.clone(),
            at: Utc::now(),
        }));
        let err = decide(&given(&ev), start(&c)).unwrap_err();
        assert!(err.to_string().contains("which is not running"), "{err}");
        // In use: web cannot be deleted; the default never.
        let del = |n: &str| Command::DeleteNetwork {
            name: n.into(),
            at: Utc::now(),
        };
        let s = given(&ev);
        let err = decide(&s, del("web")).unwrap_err();
        assert!(
            err.to_string().contains("in use by container(s) default/"),
            "{err}"
        );
        let err = decide(&s, del("berth0")).unwrap_err();
        assert!(err.to_string().contains("default network"), "{err}");
        assert_eq!(
            decide(&s, del("ghost")).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        // Detached and deleted: web can go.
        ev.push(Event::ContainerNetworkDetached(
            crate::event::ContainerNetworkDetached {
                namespace: ns(),
                id: a.clone(),
                network: "web".into(),
                ip: None,
                at: Utc::now(),
            },
        ));
        assert!(given(&ev)
            .container(&ns(), &a)
            .unwrap()
            .attachment
            .is_none());
        ev.push(Event::ContainerDeleted(ContainerRef {
            namespace: ns(),
            id: a,
            at: Utc::now(),
        }));
        assert!(decide(&given(&ev), del("web")).is_ok());
    }

    #[test]
    fn network_mode_and_events_roundtrip_the_journal_encoding() {
        let mut config = config();
        for mode in [
            NetworkMode::Bridge {
                network: "web".into(),
            },
            NetworkMode::None,
            NetworkMode::Host,
            NetworkMode::Container {
                id: ContainerId::generate(),
            },
        ] {
            config.network = mode;
            config.ports = vec![crate::network::parse_publish("127.0.0.1:80:8080/udp").unwrap()];
            let bytes = rmp_serde::to_vec_named(&config).unwrap();
            let back: ContainerConfig = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, config);
        }
        // A configuration recorded before networking decodes as `none` without ports.
        let mut v = serde_json::to_value(&config).unwrap();
        v.as_object_mut().unwrap().remove("network");
        v.as_object_mut().unwrap().remove("ports");
        let bytes = rmp_serde::to_vec_named(&v).unwrap();
        let back: ContainerConfig = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.network, NetworkMode::None);
        assert!(back.ports.is_empty());
        let ev = Event::ContainerNetworkAttached(crate::event::ContainerNetworkAttached {
            namespace: ns(),
            id: ContainerId::generate(),
            network: "web".into(),
            ifname: "eth0".into(),
            ip: "10.89.0.2".parse().unwrap(),
            mac: "02:00:00:00:00:01".into(),
            gateway: Some("10.89.0.1".parse().unwrap()),
            ports: config.ports.clone(),
            result: crate::network::cni::CniResult::default(),
            at: Utc::now(),
        });
        let back = Event::decode(ev.topic(), 1, &ev.encode_payload(), Utc::now()).unwrap();
        assert_eq!(back, ev);
    }
}
