//! State of containers: one [`Status`] enum with its `can_*` predicates, and one
//! `match` holding every transition.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::container::{ContainerConfig, ContainerId, ExitStatus};
use crate::event::Event;
use crate::ids::NamespaceName;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its snapshot and bundle are being made.
    Creating,
    /// Ready to start; never started.
    Created,
    /// Its process runs.
    Running,
    /// Its processes are frozen.
    Paused,
    /// Exited; its restart policy will start it again.
    Restarting,
    /// Exited (or never started after a failed start).
    Stopped,
    /// Being deleted.
    Deleting,
}

impl Status {
    /// The status as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Stopped => "stopped",
            Status::Deleting => "deleting",
        }
    }

    /// Parses a status filter.
    pub fn parse(raw: &str) -> Option<Status> {
        [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Restarting,
            Status::Stopped,
            Status::Deleting,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// May be started.
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Stopped | Status::Restarting)
    }

    /// May be stopped (a restarting container's pending restart is cancelled).
    pub fn can_stop(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    /// May be sent a signal.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// May be paused.
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }

    /// May be resumed.
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }

    /// May run an exec.
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }

    /// May be deleted without force.
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped | Status::Deleting)
    }

    /// Has (or may have) a live process and shim.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Id.
    pub id: ContainerId,
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name, unique in the namespace.
    pub name: String,
    /// What it was created with.
    pub config: ContainerConfig,
    /// Key of its active snapshot.
    pub snapshot_key: String,
    /// Status.
    pub status: Status,
    /// Host pid of its init while it runs.
    pub pid: Option<u32>,
    /// Pid of its shim while it has one.
    pub shim_pid: Option<u32>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last started.
    pub started_at: Option<DateTime<Utc>>,
    /// Last exit.
    pub exit: Option<ExitStatus>,
    /// What is known beyond the exit status (e.g. `shim lost`).
    pub exit_reason: Option<String>,
    /// Restarts done by the restart policy since the last user start.
    pub restart_count: u32,
    /// A user stopped or killed it since it last started (no restart then).
    pub stopped_by_user: bool,
    /// The intent in flight without an outcome yet (`create`, `start`, `stop`, …).
    pub pending: Option<String>,
    /// The last failed operation and why.
    pub last_error: Option<String>,
    /// Its attachment to a bridge network, while it has one (from the attach intent
    /// to the detach).
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

/// A container's network attachment as the journal has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network.
    pub network: String,
    /// `None` while the attach intent has no outcome yet.
    pub attached: Option<Attached>,
}

/// What CNI ADD gave a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attached {
    /// Interface inside the container.
    pub ifname: String,
    /// Address.
    pub ip: std::net::Ipv4Addr,
    /// Hardware address.
    pub mac: String,
    /// Gateway.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Published ports.
    pub ports: Vec<crate::network::PortMapping>,
    /// The CNI result (for CHECK and DEL).
    pub result: crate::network::cni::CniResult,
    /// When.
    pub at: DateTime<Utc>,
}

/// Every container, by id (ids are unique across namespaces).
pub type Containers = BTreeMap<ContainerId, Container>;

pub(super) fn apply(containers: &mut Containers, event: &Event) {
    if let Event::ContainerCreateRequested(e) = event {
        containers.insert(
            e.id.clone(),
            Container {
                id: e.id.clone(),
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                config: (*e.config).clone(),
                snapshot_key: e.snapshot_key.clone(),
                status: Status::Creating,
                pid: None,
                shim_pid: None,
                created_at: e.at,
                started_at: None,
                exit: None,
                exit_reason: None,
                restart_count: 0,
                stopped_by_user: false,
                pending: Some("create".into()),
                last_error: None,
                attachment: None,
            },
        );
        return;
    }
    let Some(id) = event.container_id() else {
        return;
    };
    if matches!(
        event,
        Event::ContainerCreateFailed(_) | Event::ContainerDeleted(_)
    ) {
        containers.remove(id);
        return;
    }
    let Some(c) = containers.get_mut(id) else {
        return;
    };
    match event {
        Event::ContainerCreated(_) => {
            c.status = Status::Created;
            c.pending = None;
        }
        Event::ContainerStartRequested(_) => {
            if c.status != Status::Restarting {
                // A start by the user (not by the restart policy) resets the count.
                c.restart_count = 0;
            }
            c.stopped_by_user = false;
            c.pending = Some("start".into());
        }
        Event::ContainerStarted(e) => {
            c.status = Status::Running;
            c.pid = Some(e.pid);
            c.shim_pid = Some(e.shim_pid);
            c.started_at = Some(e.at);
            c.exit = None;
            c.exit_reason = None;
            c.pending = None;
            c.last_error = None;
        }
        Event::ContainerStartFailed(e) => {
            if c.status == Status::Restarting {
                c.status = Status::Stopped;
            }
            c.pending = None;
            c.last_error = Some(format!("{}: {}", e.action, e.reason));
        }
        Event::ContainerStopRequested(_) => {
            c.stopped_by_user = true;
            if c.status == Status::Restarting {
                c.status = Status::Stopped;
                c.pending = None;
            } else {
                c.pending = Some("stop".into());
            }
        }
        Event::ContainerKillRequested(_) => {
            c.stopped_by_user = true;
            c.pending = Some("kill".into());
        }
        Event::ContainerSignaled(_) if c.pending.as_deref() == Some("kill") => {
            c.pending = None;
        }
        Event::ContainerPauseRequested(_) => c.pending = Some("pause".into()),
        Event::ContainerPaused(_) => {
            c.status = Status::Paused;
            c.pending = None;
        }
        Event::ContainerResumeRequested(_) => c.pending = Some("resume".into()),
        Event::ContainerResumed(_) => {
            c.status = Status::Running;
            c.pending = None;
        }
        Event::ContainerRequestFailed(e) => {
            c.pending = None;
            c.last_error = Some(format!("{}: {}", e.action, e.reason));
        }
        Event::ContainerExited(e) => {
            c.status = Status::Stopped;
            c.pid = None;
            c.exit = Some(e.exit.clone());
            c.exit_reason = e.reason.clone();
            if matches!(
                c.pending.as_deref(),
                Some("stop" | "kill" | "pause" | "resume")
            ) {
                c.pending = None;
            }
        }
        Event::ContainerRestartScheduled(e) => {
            c.status = Status::Restarting;
            c.restart_count = e.attempt;
        }
        Event::ContainerDeleteRequested(_) => {
            c.status = Status::Deleting;
            c.pending = Some("delete".into());
        }
        Event::ContainerNetworkAttachRequested(e) => {
            c.attachment = Some(Attachment {
                network: e.network.clone(),
                attached: None,
            });
        }
        Event::ContainerNetworkAttached(e) => {
            c.attachment = Some(Attachment {
                network: e.network.clone(),
                attached: Some(Attached {
                    ifname: e.ifname.clone(),
                    ip: e.ip,
                    mac: e.mac.clone(),
                    gateway: e.gateway,
                    ports: e.ports.clone(),
                    result: e.result.clone(),
                    at: e.at,
                }),
            });
        }
        Event::ContainerNetworkDetached(_) => c.attachment = None,
        _ => {}
    }
}
