//! Containers as data: the validated configuration a container is created with (stored
//! in its `container.create_requested` event), ids, restart policies, resources and exit
//! statuses. Turning a configuration into an OCI runtime spec is [`crate::oci`]'s job;
//! running it is the shim's ([`crate::shim`]).

mod config;
pub mod parse;

pub use config::{
    ContainerConfig, ContainerId, ExitStatus, MountKind, MountSpec, NetworkMode, Resources,
    RestartPolicy, DEFAULT_STOP_TIMEOUT_SECS,
};
pub use parse::{
    parse_cpus, parse_memory, parse_mount_flag, parse_restart, parse_signal, validate_env,
    validate_mounts, validate_resources,
};
