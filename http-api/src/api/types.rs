//! Request and response bodies. Requests refuse unknown fields.

use berth_engine::ids::Labels;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `{"error":{"kind":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Kind and message of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of the canonical kinds (`NotFound`, `InvalidArgument`…).
    pub kind: String,
    /// What went wrong, for people.
    pub message: String,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// berth's version.
    pub version: String,
    /// API version (`v1`).
    pub api_version: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
}

/// `GET /v1/healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The last durable sequence number.
    pub seq: u64,
}

/// `POST /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    /// The name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
}

/// A namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A namespace and the sequence number it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceResponse {
    /// The namespace.
    pub namespace: NamespaceView,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceList {
    /// Namespaces, by name.
    pub namespaces: Vec<NamespaceView>,
    /// Journal position the list reflects.
    pub seq: u64,
}

/// `DELETE /v1/namespaces/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// What was deleted.
    pub deleted: String,
    /// Journal position of the deletion.
    pub seq: u64,
}

/// One journal record as the API shows it (the event stream's `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Sequence number.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// Aggregate.
    pub stream: berth_engine::event::StreamView,
    /// Topic.
    pub topic: String,
    /// Schema of `event`.
    pub schema: u16,
    /// The event body.
    pub event: serde_json::Value,
}

/// `GET /v1/journal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalPage {
    /// Records, in order.
    pub records: Vec<EventView>,
    /// The `from` of the next page.
    pub next: u64,
    /// The last durable sequence number.
    pub last_seq: u64,
}

/// `POST /v1/journal/checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointTaken {
    /// The sequence number the checkpoint reflects.
    pub seq: u64,
}

/// `GET /v1/journal/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalStatsResponse {
    /// Journal numbers.
    pub stats: berth_journal::JournalStats,
    /// What recovery did at the last start.
    pub recovery: berth_actors::RecoveryReport,
}

/// What an image name points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetView {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
}

/// An image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Name.
    pub name: String,
    /// Target.
    pub target: TargetView,
    /// Labels.
    pub labels: Labels,
    /// First stored.
    pub created_at: DateTime<Utc>,
    /// Last stored.
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    /// Images by name.
    pub images: Vec<ImageView>,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/images/{name}`: the image and what it resolves to for the host platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInspect {
    /// The image.
    pub image: ImageView,
    /// The manifest used on this host.
    pub manifest: String,
    /// The config digest.
    pub config: String,
    /// Platform (`os/arch[/variant]`).
    pub platform: String,
    /// Layer digests.
    pub layers: Vec<String>,
    /// Uncompressed layer digests.
    pub diff_ids: Vec<String>,
    /// Chain ids (the committed snapshots' names).
    pub chain_ids: Vec<String>,
    /// Whether every layer is unpacked in this namespace.
    pub unpacked: bool,
    /// Sum of the blobs (manifest, config, layers) in bytes.
    pub size: u64,
    /// The image configuration (OCI JSON).
    pub config_json: serde_json::Value,
}

/// `POST /v1/images/import` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportResponse {
    /// Import id (its events' stream id).
    pub id: String,
    /// Images stored.
    pub images: Vec<ImageView>,
    /// Journal position.
    pub seq: u64,
}

/// Credentials for a registry, given with a pull or push request (they take
/// precedence over the daemon's credentials file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

/// `POST /v1/images/pull` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullImageRequest {
    /// `host[:port]/repo[:tag][@sha256:…]`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `os/arch[/variant]` to pick from an index and unpack (default: this host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
}

/// `POST /v1/images/pull` answer (and the final line of `?stream=true`, with
/// `"status":"completed"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullImageResponse {
    /// The image name stored.
    pub image: String,
    /// The manifest or index digest the reference resolved to.
    pub digest: String,
    /// The pull's id (its events' stream id).
    pub pull_id: String,
    /// Journal position.
    pub seq: u64,
}

/// `POST /v1/images/pull` answer without `wait` or `stream` (202): the pull runs on;
/// its progress and outcome are on `/v1/events` (stream `pull`, id `pull_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullAccepted {
    /// The pull's id (its events' stream id).
    pub pull_id: String,
    /// The reference being pulled.
    pub reference: String,
}

/// `POST /v1/images/{name}/push` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushImageRequest {
    /// Where to push (default: the image's own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegistryAuth>,
}

/// `POST /v1/images/{name}/push` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushImageResponse {
    /// The image pushed.
    pub image: String,
    /// Where it went.
    pub target: String,
    /// The digest of the manifest or index pushed.
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: u64,
    /// Blobs mounted from another repository of the registry.
    pub mounted: u64,
    /// Blobs the registry had.
    pub existing: u64,
}

/// `POST /v1/images/{name}/tag` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The new name.
    pub target: String,
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotView {
    /// Key or name.
    pub key: String,
    /// Parent.
    pub parent: Option<String>,
    /// `active`, `view`, `committed`.
    pub kind: String,
    /// Storage id.
    pub id: u64,
    /// Snapshotter.
    pub snapshotter: String,
    /// Labels.
    pub labels: Labels,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Bytes of its own storage.
    pub size: u64,
    /// Inodes of its own storage.
    pub inodes: u64,
}

/// `GET /v1/snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// Snapshots.
    pub snapshots: Vec<SnapshotView>,
    /// Journal position.
    pub seq: u64,
}

/// A blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentView {
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
    /// Labels.
    pub labels: Labels,
    /// Committed.
    pub committed_at: DateTime<Utc>,
}

/// `GET /v1/content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentList {
    /// Blobs.
    pub content: Vec<ContentView>,
    /// Journal position.
    pub seq: u64,
}

/// One line of `GET /v1/system/df`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DfLine {
    /// How many.
    pub count: u64,
    /// Bytes.
    pub size: u64,
    /// Bytes garbage collection would free.
    pub reclaimable: u64,
}

/// `GET /v1/system/df`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Df {
    /// Images (all namespaces).
    pub images: DfLine,
    /// Content store.
    pub content: DfLine,
    /// Snapshots.
    pub snapshots: DfLine,
}

/// `POST /v1/gc` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcReport {
    /// Blobs removed.
    pub content_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Milliseconds.
    pub took_ms: u64,
}

/// `PUT /v1/content/{digest}/labels` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    /// The labels (replacing the current ones).
    pub labels: Labels,
}

// ---- containers ----

/// A number or a string in a request body: `"512m"` or `536870912` for memory, `"1.5"` or
/// `1.5` for CPUs. Kept as written; the route parses it and names the field when it is
/// bad.
#[derive(Debug, Clone, PartialEq)]
pub enum Quantity {
    /// A JSON string.
    Text(String),
    /// A JSON integer.
    Int(i64),
    /// A JSON number with a fraction (or an integer beyond `i64`).
    Float(f64),
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quantity::Text(t) => s.serialize_str(t),
            Quantity::Int(i) => s.serialize_i64(*i),
            Quantity::Float(f) => s.serialize_f64(*f),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string such as \"512m\" or \"1.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(i64::try_from(v).map_or(Quantity::Float(v as f64), Quantity::Int))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantity::Text(t) => f.write_str(t),
            Quantity::Int(i) => write!(f, "{i}"),
            Quantity::Float(x) => write!(f, "{x}"),
        }
    }
}

/// A mount in `POST /v1/containers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: berth_engine::container::MountKind,
    /// Host path (bind only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Absolute path in the container.
    pub destination: String,
    /// Mounted read-only.
    #[serde(default)]
    pub readonly: bool,
    /// Options: `nosuid`, `nodev`, `noexec` (bind); `size=64m`, `mode=1777`… (tmpfs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `POST /v1/containers` body. Only `image` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainerRequest {
    /// Name, unique in the namespace (default: the short id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image name.
    pub image: String,
    /// Replaces the image's entrypoint (and drops its cmd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` pairs added to the image's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user[:group]`, names or numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Bind and tmpfs mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountRequest>,
    /// Read-only rootfs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Memory limit: `"512m"` or bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// CPUs: `"1.5"` or `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Quantity>,
    /// Relative CPU weight (2..=262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// Most processes (`-1`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `no`, `always`, `on-failure[:N]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// OCI runtime name (the daemon's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Seconds between the stop signal and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// Stop signal, name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--network`: a network's name, `bridge` (the default network), `none`, `host` or
    /// `container:<id, name or prefix>` (default: the default network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Ports published on the host (bridge networks only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRequest>,
}

/// A published port in `POST /v1/containers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRequest {
    /// The port on the host (1 to 65535).
    pub host_port: u16,
    /// The port inside the container (1 to 65535).
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<berth_engine::network::Protocol>,
    /// The host address it is published on (IPv4; default: every address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

impl From<berth_engine::network::PortMapping> for PortRequest {
    fn from(p: berth_engine::network::PortMapping) -> Self {
        PortRequest {
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: Some(p.protocol),
            host_ip: p.host_ip.map(|ip| ip.to_string()),
        }
    }
}

/// How a container is networked, and what its attachment gave it while it has one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerNetworkView {
    /// `bridge`, `none`, `host` or `container`.
    pub mode: String,
    /// The network (bridge mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The container whose network namespace it shares (container mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its address while attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its hardware address while attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its gateway while attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<berth_engine::network::PortMapping>,
}

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitView {
    /// Exit code (`128 + n` when killed by signal `n`); `null` when unknown.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The OOM killer ended it.
    pub oom_killed: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    /// Id (32 hex characters).
    pub id: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The image as named at creation.
    pub image: String,
    /// The manifest it resolved to.
    pub image_digest: String,
    /// `creating`, `created`, `running`, `paused`, `restarting`, `stopped`, `deleting`.
    pub status: String,
    /// Host pid of its init while it runs.
    pub pid: Option<u32>,
    /// Pid of its shim.
    pub shim_pid: Option<u32>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last started.
    pub started_at: Option<DateTime<Utc>>,
    /// Last exit.
    pub exit: Option<ExitView>,
    /// What is known beyond the exit status.
    pub exit_reason: Option<String>,
    /// Restarts by the restart policy since the last user start.
    pub restart_count: u32,
    /// `no`, `always`, `on-failure`, `on-failure:N`.
    pub restart_policy: String,
    /// Labels.
    pub labels: Labels,
    /// The last failed operation and why.
    pub last_error: Option<String>,
    /// The operation in flight (`start`, `stop`…).
    pub pending: Option<String>,
    /// Its network: mode, and address and ports while attached.
    #[serde(default)]
    pub network: ContainerNetworkView,
    /// Everything it was created with.
    pub config: berth_engine::container::ContainerConfig,
}

/// A container after a change, and the journal position of the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerResponse {
    /// The container.
    pub container: ContainerView,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/containers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerList {
    /// Containers, by id.
    pub containers: Vec<ContainerView>,
    /// Journal position the list reflects.
    pub seq: u64,
}

/// `POST /v1/containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    /// Exit code; `null` when it never ran or the code is unknown.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The OOM killer ended it.
    pub oom_killed: bool,
    /// When it ended; `null` when it never ran.
    pub at: Option<DateTime<Utc>>,
}

/// `POST /v1/containers/{id}/exec` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequestBody {
    /// The command and its arguments (non-empty).
    pub cmd: Vec<String>,
    /// `KEY=VALUE` (the container's environment when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory (the container's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `uid[:gid]`, numbers (the container's user when absent; gid 0 when only the uid
    /// is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// What an exec produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResponse {
    /// Exit code (`128 + n` when killed by signal `n`).
    pub exit_code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// Output beyond the daemon's cap was dropped.
    pub truncated: bool,
}

/// One line of `GET /v1/containers/{id}/logs?format=json` (NDJSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was written.
    pub at: DateTime<Utc>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line without its newline (lossy UTF-8).
    pub line: String,
}

// ---- networks ----

/// `POST /v1/networks` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkRequest {
    /// The name (unique on the host).
    pub name: String,
    /// IPv4 subnet in CIDR form, e.g. `10.89.0.0/24`.
    pub subnet: String,
    /// The bridge's address (default: the subnet's first address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The Linux bridge's name (default: derived from the network's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// A container configured on a network or attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkContainerView {
    /// Its namespace.
    pub namespace: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its address, once attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// A network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Name.
    pub name: String,
    /// The Linux bridge on the host.
    pub bridge: String,
    /// Subnet (CIDR).
    pub subnet: String,
    /// The bridge's address.
    pub gateway: std::net::Ipv4Addr,
    /// Labels.
    pub labels: Labels,
    /// The daemon's default network.
    pub default: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Containers configured on it or attached to it (every namespace), by namespace
    /// and name; `ip` while attached.
    pub containers: Vec<NetworkContainerView>,
}

/// A network and the journal position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkResponse {
    /// The network.
    pub network: NetworkView,
    /// Journal position.
    pub seq: u64,
}

/// `GET /v1/networks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkList {
    /// Networks, by name.
    pub networks: Vec<NetworkView>,
    /// Journal position the list reflects.
    pub seq: u64,
}
