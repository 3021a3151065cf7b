//! `/v1/containers`: create, list, inspect, the lifecycle verbs, exec, logs, delete.
//!
//! Request bodies and queries are parsed into the actors' messages here, once, and every
//! bad value is a 400 naming the field and the value. Reads (list, inspect, which
//! container a log belongs to) come from the shared state; changes go to the
//! container's actor, found through the supervisor by id, name or unique id prefix.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use berth_actors::container::ContainerActor;
use berth_actors::messages::{
    ContainerReply, ContainerRequest, CreateContainer, DeleteContainer, ExecInContainer,
    GetContainer, KillContainer, PauseContainer, ResumeContainer, StartContainer, StopContainer,
    WaitContainer,
};
use berth_actors::SharedState;
use berth_engine::container::parse::{
    normalise_container_path, parse_cpus, parse_memory, parse_restart, parse_signal, validate_env,
    validate_mounts, validate_resources,
};
use berth_engine::container::{
    ContainerId, ExitStatus, MountKind, MountSpec, NetworkMode, Resources,
};
use berth_engine::ids::{validate_labels, validate_name, ImageName, NamespaceName};
use berth_engine::logs::{Follower, LogRecord, ReadOptions};
use berth_engine::network::{PortMapping, Protocol};
use berth_engine::shim::proto::ExecRequest;
use berth_engine::state::{Container, Status};
use berth_engine::EngineError;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use tokio::sync::{mpsc, watch};

use crate::api::error::ApiError;
use crate::api::types::*;
use crate::routes::bridge::ChannelWriter;
use crate::routes::{mailbox, namespace_of, AppState, NsQuery};

/// The signal `kill` sends when none is named (as `docker kill`).
const SIGKILL: i32 = 9;

/// How long a log follower waits for new lines before looking at the container again
/// (bounds how late a follow ends after the container stopped).
const FOLLOW_WAIT: Duration = Duration::from_millis(25);

/// The API view of a container.
pub fn view(c: &Container) -> ContainerView {
    ContainerView {
        id: c.id.to_string(),
        name: c.name.clone(),
        namespace: c.namespace.to_string(),
        image: c.config.image.to_string(),
        image_digest: c.config.image_digest.to_string(),
        status: c.status.as_str().to_string(),
        pid: c.pid,
        shim_pid: c.shim_pid,
        created_at: c.created_at,
        started_at: c.started_at,
        exit: c.exit.as_ref().map(|e| ExitView {
            code: e.code,
            signal: e.signal,
            oom_killed: e.oom_killed,
            at: e.at,
        }),
        exit_reason: c.exit_reason.clone(),
        restart_count: c.restart_count,
        restart_policy: c.config.restart.to_string(),
        labels: c.config.labels.clone(),
        last_error: c.last_error.clone(),
        pending: c.pending.clone(),
        network: network_view(c),
        config: c.config.clone(),
    }
}

/// The `network` section of a container's view: its mode, and what its attachment
/// gave it while it has one.
pub fn network_view(c: &Container) -> ContainerNetworkView {
    let (mode, network, container) = match &c.config.network {
        NetworkMode::Bridge { network } => ("bridge", Some(network.clone()), None),
        NetworkMode::None => ("none", None, None),
        NetworkMode::Host => ("host", None, None),
        NetworkMode::Container { id } => ("container", None, Some(id.to_string())),
    };
    let attached = c.attachment.as_ref().and_then(|a| a.attached.as_ref());
    ContainerNetworkView {
        mode: mode.to_string(),
        network: c.attachment.as_ref().map(|a| a.network.clone()).or(network),
        container,
        ip: attached.map(|a| a.ip),
        mac: attached.map(|a| a.mac.clone()),
        gateway: attached.and_then(|a| a.gateway),
        ports: c.config.ports.clone(),
    }
}

fn response(reply: &ContainerReply) -> ContainerResponse {
    ContainerResponse {
        container: view(&reply.container),
        seq: reply.seq,
    }
}

// ---- parsing requests ----

fn memory_of(q: &Quantity) -> Result<i64, EngineError> {
    match q {
        Quantity::Text(t) => parse_memory(t),
        Quantity::Int(n) if *n > 0 => Ok(*n),
        Quantity::Int(n) => Err(EngineError::InvalidArgument(format!(
            "invalid memory {n}: the limit must be greater than zero"
        ))),
        Quantity::Float(x) => Err(EngineError::InvalidArgument(format!(
            "invalid memory {x}: use a whole number of bytes or a string such as \"512m\""
        ))),
    }
}

fn cpus_of(q: &Quantity) -> Result<(i64, u64), EngineError> {
    match q {
        Quantity::Text(t) => parse_cpus(t),
        Quantity::Int(n) => parse_cpus(&n.to_string()),
        // Rust prints floats without an exponent, so `1e-3` reaches the parser as
        // `0.001` and is refused there with the value.
        Quantity::Float(x) if x.is_finite() => parse_cpus(&x.to_string()),
        Quantity::Float(x) => Err(EngineError::InvalidArgument(format!(
            "invalid cpus {x}: use a positive number such as 0.5 or 2"
        ))),
    }
}

fn no_nul(what: &str, args: &[String]) -> Result<(), EngineError> {
    match args.iter().find(|a| a.contains('\0')) {
        Some(a) => Err(EngineError::InvalidArgument(format!(
            "{what} argument {a:?} contains a NUL byte"
        ))),
        None => Ok(()),
    }
}

fn check_hostname(raw: &str) -> Result<(), EngineError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !raw.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid hostname {raw:?}: use up to 64 letters, digits, '-' and '.'"
        )))
    }
}

fn mount_of(m: MountRequest) -> Result<MountSpec, EngineError> {
    let destination = normalise_container_path("mount destination", &m.destination)?;
    let source = match (m.kind, m.source) {
        (MountKind::Bind, Some(s)) if !s.is_empty() => s,
        (MountKind::Bind, _) => {
            return Err(EngineError::InvalidArgument(format!(
                "bind mount {destination:?} needs a source"
            )))
        }
        (MountKind::Tmpfs, s) => s.unwrap_or_default(),
    };
    Ok(MountSpec {
        kind: m.kind,
        source,
        destination,
        readonly: m.readonly,
        options: m.options,
    })
}

/// A published port of a create body: ports from 1 to 65535, an IPv4 host address.
fn port_of(p: &PortRequest) -> Result<PortMapping, EngineError> {
    let shown = || serde_json::to_string(p).unwrap_or_default();
    if p.host_port == 0 || p.container_port == 0 {
        return Err(EngineError::InvalidArgument(format!(
            "invalid published port {}: ports must be from 1 to 65535",
            shown()
        )));
    }
    let host_ip = p
        .host_ip
        .as_deref()
        .map(|ip| {
            ip.parse::<Ipv4Addr>().map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid published port {}: host_ip {ip:?} is not an IPv4 address",
                    shown()
                ))
            })
        })
        .transpose()?;
    Ok(PortMapping {
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p.protocol.unwrap_or(Protocol::Tcp),
        host_ip,
    })
}

/// The published ports of a create body; two that claim the same host port are refused.
pub fn ports_of(ports: &[PortRequest]) -> Result<Vec<PortMapping>, EngineError> {
    let ports = ports.iter().map(port_of).collect::<Result<Vec<_>, _>>()?;
    for (i, a) in ports.iter().enumerate() {
        if let Some(b) = ports[..i].iter().find(|b| b.conflicts(a)) {
            return Err(EngineError::InvalidArgument(format!(
                "published ports {b} and {a} claim the same host port"
            )));
        }
    }
    Ok(ports)
}

/// Parses and validates a create body into the name and the actors' request. Stats bind
/// mount sources (so it runs on a blocking thread).
pub fn container_request(
    body: CreateContainerRequest,
) -> Result<(Option<String>, ContainerRequest), EngineError> {
    if let Some(n) = &body.name {
        validate_name("container", n)?;
    }
    let image = ImageName::parse(&body.image)?;
    if let Some(e) = &body.entrypoint {
        no_nul("entrypoint", e)?;
    }
    if let Some(c) = &body.cmd {
        no_nul("cmd", c)?;
    }
    validate_env(&body.env)?;
    let working_dir = body
        .working_dir
        .as_deref()
        .map(|w| normalise_container_path("working directory", w))
        .transpose()?;
    if let Some(u) = &body.user {
        if u.is_empty() || u.contains('\0') || u.starts_with(':') {
            return Err(EngineError::InvalidArgument(format!(
                "invalid user {u:?}: use user[:group], by name or number"
            )));
        }
    }
    if let Some(h) = &body.hostname {
        check_hostname(h)?;
    }
    validate_labels(&body.labels)?;
    let mounts = body
        .mounts
        .into_iter()
        .map(mount_of)
        .collect::<Result<Vec<_>, _>>()?;
    validate_mounts(&mounts)?;
    let (cpu_quota, cpu_period) = match &body.cpus {
        Some(c) => {
            let (q, p) = cpus_of(c)?;
            (Some(q), Some(p))
        }
        None => (None, None),
    };
    let resources = Resources {
        memory: body.memory.as_ref().map(memory_of).transpose()?,
        cpu_shares: body.cpu_shares,
        cpu_quota,
        cpu_period,
        pids_limit: body.pids_limit,
    };
    validate_resources(&resources)?;
    let restart = match &body.restart {
        Some(r) => parse_restart(r)?,
        None => Default::default(),
    };
    if let Some(r) = &body.runtime {
        if r.is_empty() {
            return Err(EngineError::InvalidArgument(
                "runtime must not be empty".into(),
            ));
        }
    }
    if let Some(s) = &body.stop_signal {
        parse_signal(s)?;
    }
    if let Some(n) = &body.network {
        if n.is_empty() || n.contains('\0') {
            return Err(EngineError::InvalidArgument(format!(
                "invalid network {n:?}: use a network's name, bridge, none, host or \
                 container:<name or id>"
            )));
        }
    }
    let ports = ports_of(&body.ports)?;
    Ok((
        body.name,
        ContainerRequest {
            image,
            entrypoint: body.entrypoint,
            cmd: body.cmd,
            env: body.env,
            working_dir,
            user: body.user,
            hostname: body.hostname,
            labels: body.labels,
            mounts,
            read_only: body.read_only,
            resources,
            restart,
            runtime: body.runtime,
            stop_timeout: body.stop_timeout,
            stop_signal: body.stop_signal,
            network: body.network,
            ports,
        },
    ))
}

/// Parses `uid[:gid]` (numbers; gid 0 when only the uid is given).
pub fn parse_exec_user(raw: &str) -> Result<(u32, u32), EngineError> {
    let bad = || {
        EngineError::InvalidArgument(format!(
            "invalid user {raw:?}: exec takes uid[:gid] as numbers"
        ))
    };
    let num = |s: &str| -> Result<u32, EngineError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    match raw.split_once(':') {
        Some((u, g)) => Ok((num(u)?, num(g)?)),
        None => Ok((num(raw)?, 0)),
    }
}

/// Parses an exec body into the shim's request.
pub fn exec_request(body: ExecRequestBody) -> Result<ExecRequest, EngineError> {
    if body.cmd.is_empty() || body.cmd[0].is_empty() {
        return Err(EngineError::InvalidArgument(
            "exec needs a command: cmd must not be empty".into(),
        ));
    }
    no_nul("cmd", &body.cmd)?;
    validate_env(&body.env)?;
    Ok(ExecRequest {
        args: body.cmd,
        env: body.env,
        cwd: body
            .working_dir
            .as_deref()
            .map(|w| normalise_container_path("working directory", w))
            .transpose()?,
        user: body.user.as_deref().map(parse_exec_user).transpose()?,
    })
}

/// The filters of `GET /v1/containers`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    /// `namespace=`.
    pub namespace: Option<String>,
    /// `status=` (repeatable: any of them).
    pub statuses: Vec<Status>,
    /// `label=k=v` or `label=k` (repeatable: all of them).
    pub labels: Vec<(String, Option<String>)>,
}

impl ListFilter {
    /// Parses the query's pairs; unknown parameters are refused.
    pub fn parse(pairs: &[(String, String)]) -> Result<ListFilter, EngineError> {
        let mut f = ListFilter::default();
        for (k, v) in pairs {
            match k.as_str() {
                "namespace" => f.namespace = Some(v.clone()),
                "status" => {
                    for s in v.split(',') {
                        f.statuses.push(Status::parse(s).ok_or_else(|| {
                            EngineError::InvalidArgument(format!(
                                "invalid status {s:?}: use creating, created, running, paused, \
                                 restarting, stopped or deleting"
                            ))
                        })?);
                    }
                }
                "label" => match v.split_once('=') {
                    Some(("", _)) => {
                        return Err(EngineError::InvalidArgument(format!(
                            "invalid label filter {v:?}: use KEY or KEY=VALUE"
                        )))
                    }
                    Some((key, value)) => f.labels.push((key.into(), Some(value.into()))),
                    None if v.is_empty() => {
                        return Err(EngineError::InvalidArgument(
                            "invalid label filter \"\": use KEY or KEY=VALUE".into(),
                        ))
                    }
                    None => f.labels.push((v.clone(), None)),
                },
                other => {
                    return Err(EngineError::InvalidArgument(format!(
                        "unknown query parameter {other:?}: use namespace, status or label"
                    )))
                }
            }
        }
        Ok(f)
    }

    /// Whether `c` passes the status and label filters.
    pub fn matches(&self, c: &Container) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&c.status))
            && self
                .labels
                .iter()
                .all(|(k, v)| match (c.config.labels.get(k), v) {
                    (Some(have), Some(want)) => have == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                })
    }
}

/// A query flag: `true`, `1`, `yes` or nothing at all (`?follow`) are true; `false`, `0`,
/// `no` are false.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    raw.map(|r| match r.as_str() {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "invalid flag {other:?}: use true or false"
        ))),
    })
    .transpose()
}

/// Query of `POST /v1/containers/{id}/stop`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Seconds before SIGKILL.
    pub timeout: Option<u64>,
    /// Signal, name or number.
    pub signal: Option<String>,
}

/// Query of `POST /v1/containers/{id}/kill`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Signal, name or number (default KILL).
    pub signal: Option<String>,
}

/// Query of `DELETE /v1/containers/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Kill a running container first.
    #[serde(default, deserialize_with = "flag")]
    pub force: Option<bool>,
}

/// Query of `GET /v1/containers/{id}/logs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Namespace.
    pub namespace: Option<String>,
    /// Keep streaming until the container no longer runs.
    #[serde(default, deserialize_with = "flag")]
    pub follow: Option<bool>,
    /// The last N lines, or `all`.
    pub tail: Option<String>,
    /// Lines at or after this time (RFC 3339 or unix seconds).
    pub since: Option<String>,
    /// Prefix text lines with their time.
    #[serde(default, deserialize_with = "flag")]
    pub timestamps: Option<bool>,
    /// Standard output lines (default true).
    #[serde(default, deserialize_with = "flag")]
    pub stdout: Option<bool>,
    /// Standard error lines (default true).
    #[serde(default, deserialize_with = "flag")]
    pub stderr: Option<bool>,
    /// `text` (default) or `json` (NDJSON of [`LogLine`]).
    pub format: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines as the container wrote them, optionally after their time.
    Text {
        /// With `<RFC3339Nano> ` before each line.
        timestamps: bool,
    },
    /// One [`LogLine`] JSON object per line.
    Json,
}

impl LogFormat {
    /// `rec` as the body carries it.
    pub fn render(self, rec: &LogRecord) -> Vec<u8> {
        match self {
            LogFormat::Text { timestamps } => berth_engine::logs::format_line(rec, timestamps),
            LogFormat::Json => {
                let mut out = serde_json::to_vec(&LogLine {
                    at: rec.at,
                    stream: rec.stream.as_str().to_string(),
                    line: String::from_utf8_lossy(&rec.text).into_owned(),
                })
                .unwrap_or_default();
                out.push(b'\n');
                out
            }
        }
    }
}

/// Parses `since`: unix seconds (with an optional fraction) or RFC 3339.
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, EngineError> {
    let bad = || {
        EngineError::InvalidArgument(format!(
            "invalid since {raw:?}: use RFC 3339 (2006-01-02T15:04:05Z) or unix seconds"
        ))
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if digits(secs) && (frac.is_empty() || digits(frac)) && !raw.ends_with('.') {
        let s: i64 = secs.parse().map_err(|_| bad())?;
        let mut nanos: u32 = 0;
        for (i, b) in frac.bytes().take(9).enumerate() {
            let place = u32::try_from(8 - i).map_err(|_| bad())?;
            nanos += u32::from(b - b'0') * 10u32.pow(place);
        }
        return DateTime::from_timestamp(s, nanos).ok_or_else(bad);
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| bad())
}

/// Parses a logs query into read options, the format and whether to follow.
pub fn logs_options(q: &LogsQuery) -> Result<(ReadOptions, LogFormat, bool), EngineError> {
    let tail = match q.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "invalid tail {n:?}: use a number of lines or all"
            ))
        })?),
    };
    let opts = ReadOptions {
        tail,
        since: q.since.as_deref().map(parse_since).transpose()?,
        until: None,
        stdout: q.stdout.unwrap_or(true),
        stderr: q.stderr.unwrap_or(true),
    };
    if !opts.stdout && !opts.stderr {
        return Err(EngineError::InvalidArgument(
            "choose at least one of stdout and stderr".into(),
        ));
    }
    let format = match q.format.as_deref() {
        None | Some("text") => LogFormat::Text {
            timestamps: q.timestamps.unwrap_or(false),
        },
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(EngineError::InvalidArgument(format!(
                "invalid format {other:?}: use text or json"
            )))
        }
    };
    Ok((opts, format, q.follow.unwrap_or(false)))
}

/// Whether a followed container may still write to its log: it runs, is paused, will be
/// restarted, or is being started.
fn may_write(c: &Container) -> bool {
    matches!(
        c.status,
        Status::Running | Status::Paused | Status::Restarting
    ) || c.pending.as_deref() == Some("start")
}

// ---- handlers ----

async fn actor(
    state: &AppState,
    namespace: NamespaceName,
    key: &str,
) -> Result<(ContainerId, Addr<ContainerActor>), ApiError> {
    Ok(state
        .handles
        .supervisor
        .send(GetContainer {
            namespace,
            key: key.to_string(),
        })
        .await
        .map_err(mailbox)??)
}

fn actor_gone(id: &ContainerId) -> impl FnOnce(actix::MailboxError) -> ApiError + '_ {
    move |_| {
        ApiError(EngineError::Unavailable(format!(
            "the actor of container {id} is not running"
        )))
    }
}

fn blocking_failed(e: actix_web::error::BlockingError) -> ApiError {
    ApiError(EngineError::Internal(e.to_string()))
}

/// `POST /v1/containers`.
pub async fn create(
    state: web::Data<AppState>,
    q: web::Query<NsQuery>,
    body: web::Json<CreateContainerRequest>,
) -> Result<HttpResponse, ApiError> {
    let namespace = namespace_of(&q)?;
    let body = body.into_inner();
    let (name, request) = web::block(move || container_request(body))
        .await
        .map_err(blocking_failed)??;
    let reply = berth_actors::container::create(
        &state.handles.supervisor,
        CreateContainer {
            namespace,
            name,
            request,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(response(&reply)))
}

/// `GET /v1/containers?status=&label=`: every container of the namespace that passes the
/// filters, newest first.
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let filter = ListFilter::parse(&q)?;
    let ns = namespace_of(&NsQuery {
        namespace: filter.namespace.clone(),
    })?;
    let s = state.handles.writer.state().read();
    let mut found: Vec<&Container> = s
        .containers
        .values()
        .filter(|c| c.namespace == ns && filter.matches(c))
        .collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(HttpResponse::Ok().json(ContainerList {
        containers: found.into_iter().map(view).collect(),
        seq: s.seq,
    }))
}

/// `GET /v1/containers/{id}`.
pub async fn inspect(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let s = state.handles.writer.state().read();
    let c = s.find_container(&ns, &key)?;
    Ok(HttpResponse::Ok().json(view(c)))
}

/// `POST /v1/containers/{id}/start`.
pub async fn start(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, addr) = actor(&state, namespace_of(&q)?, &key).await?;
    let reply = addr.send(StartContainer).await.map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(response(&reply)))
}

/// `POST /v1/containers/{id}/stop?timeout=&signal=`: answered once it exited.
pub async fn stop(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<StopQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let signal = q.signal.as_deref().map(parse_signal).transpose()?;
    let (id, addr) = actor(&state, ns, &key).await?;
    let reply = addr
        .send(StopContainer {
            timeout: q.timeout,
            signal,
        })
        .await
        .map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(response(&reply)))
}

/// `POST /v1/containers/{id}/kill?signal=` (default KILL).
pub async fn kill(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<KillQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let signal = match q.signal.as_deref() {
        Some(s) => parse_signal(s)?,
        None => SIGKILL,
    };
    let (id, addr) = actor(&state, ns, &key).await?;
    let reply = addr
        .send(KillContainer { signal })
        .await
        .map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(response(&reply)))
}

/// `POST /v1/containers/{id}/pause`.
pub async fn pause(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, addr) = actor(&state, namespace_of(&q)?, &key).await?;
    let reply = addr.send(PauseContainer).await.map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(response(&reply)))
}

/// `POST /v1/containers/{id}/resume`.
pub async fn resume(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, addr) = actor(&state, namespace_of(&q)?, &key).await?;
    let reply = addr
        .send(ResumeContainer)
        .await
        .map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(response(&reply)))
}

/// The answer of `wait` for an exit (or none: it never ran).
pub fn wait_response(exit: Option<&ExitStatus>) -> WaitResponse {
    WaitResponse {
        exit_code: exit.and_then(|e| e.code),
        signal: exit.and_then(|e| e.signal),
        oom_killed: exit.is_some_and(|e| e.oom_killed),
        at: exit.map(|e| e.at),
    }
}

/// `POST /v1/containers/{id}/wait`: answered when the container is not running.
pub async fn wait(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, addr) = actor(&state, namespace_of(&q)?, &key).await?;
    let exit = addr.send(WaitContainer).await.map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(wait_response(exit.as_ref())))
}

/// `POST /v1/containers/{id}/exec`.
pub async fn exec(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<NsQuery>,
    body: web::Json<ExecRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&q)?;
    let request = exec_request(body.into_inner())?;
    let (id, addr) = actor(&state, ns, &key).await?;
    let out = addr
        .send(ExecInContainer(request))
        .await
        .map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(ExecResponse {
        exit_code: out.exit_code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        truncated: out.truncated,
    }))
}

/// `DELETE /v1/containers/{id}?force=`.
pub async fn delete(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let (id, addr) = actor(&state, ns, &key).await?;
    let seq = addr
        .send(DeleteContainer {
            force: q.force.unwrap_or(false),
        })
        .await
        .map_err(actor_gone(&id))??;
    Ok(HttpResponse::Ok().json(Deleted {
        deleted: id.to_string(),
        seq,
    }))
}

/// `GET /v1/containers/{id}/logs`: the lines, streamed; with `follow`, new lines until
/// the container no longer runs and its log is read to the end.
pub async fn logs(
    state: web::Data<AppState>,
    key: web::Path<String>,
    q: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let ns = namespace_of(&NsQuery {
        namespace: q.namespace.clone(),
    })?;
    let (opts, format, follow) = logs_options(&q)?;
    let id = state
        .handles
        .writer
        .state()
        .read()
        .find_container(&ns, &key)?
        .id
        .clone();
    let path: PathBuf = state.handles.containers.log_path(&id);
    let max_files = state.handles.containers.log_max_files;
    let (records, follower) = web::block(move || {
        if follow {
            berth_engine::logs::follow(&path, max_files, &opts).map(|(r, f)| (r, Some(f)))
        } else {
            berth_engine::logs::read(&path, max_files, &opts).map(|r| (r, None))
        }
    })
    .await
    .map_err(blocking_failed)?
    .map_err(|e| {
        ApiError(EngineError::Internal(format!(
            "reading the log of container {id}: {e}"
        )))
    })?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let pump = Pump {
        id,
        shared: state.handles.writer.state().clone(),
        shutdown: state.shutdown.clone(),
        format,
        probe: tx.clone(),
        out: ChannelWriter::new(tx),
    };
    std::thread::Builder::new()
        .name("berth-logs".into())
        .spawn(move || pump.run(records, follower))
        .map_err(|e| {
            ApiError(EngineError::Unavailable(format!(
                "cannot start a log reader: {e}"
            )))
        })?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let content_type = match format {
        LogFormat::Text { .. } => "text/plain; charset=utf-8",
        LogFormat::Json => "application/x-ndjson",
    };
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", content_type))
        .insert_header(("cache-control", "no-cache"))
        .streaming(body))
}

/// Writes a log into a response body on its own thread.
struct Pump {
    id: ContainerId,
    shared: SharedState,
    shutdown: watch::Receiver<bool>,
    format: LogFormat,
    /// Tells when the client went away while no line is written.
    probe: mpsc::Sender<Result<Bytes, std::io::Error>>,
    out: ChannelWriter,
}

impl Pump {
    fn run(mut self, records: Vec<LogRecord>, follower: Option<Follower>) {
        let res = self.send(&records).and_then(|()| match follower {
            Some(f) => self.follow(f),
            None => Ok(()),
        });
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                tracing::warn!(container = %self.id, error = %e, "reading a container log failed");
                self.out.fail(e);
            }
        }
    }

    /// Writes `records` and flushes them to the client.
    fn send(&mut self, records: &[LogRecord]) -> std::io::Result<()> {
        for r in records {
            self.out.write_all(&self.format.render(r))?;
        }
        self.out.flush()
    }

    fn gone(&self) -> bool {
        self.probe.is_closed() || *self.shutdown.borrow()
    }

    fn may_write(&self) -> bool {
        self.shared
            .read()
            .containers
            .get(&self.id)
            .is_some_and(may_write)
    }

    /// New lines until the container no longer runs and its log is read to the end.
    /// The shim records the exit only after both output pipes reached EOF and every
    /// line is in the file, so once the state says stopped, reading until nothing is
    /// left loses no line.
    fn follow(&mut self, mut follower: Follower) -> std::io::Result<()> {
        // Idle waits grow 2, 4, 8, 16 ms up to FOLLOW_WAIT: a short-lived container
        // (`berth run … true`) ends its stream within milliseconds, a quiet long-lived
        // one costs a poll every FOLLOW_WAIT.
        let mut idle = 0u32;
        loop {
            if self.gone() {
                return Ok(());
            }
            let running = self.may_write();
            let wait = if running {
                Duration::from_millis(2u64 << idle.min(4)).min(FOLLOW_WAIT)
            } else {
                Duration::ZERO
            };
            let batch = follower.next_batch(wait)?;
            idle = if batch.is_empty() {
                idle.saturating_add(1)
            } else {
                0
            };
            if !batch.is_empty() {
                self.send(&batch)?;
            } else if !running {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::test_support::msg;

    fn body(json: &str) -> Result<CreateContainerRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn create_body_minimal_and_full() {
        let (name, r) = container_request(body(r#"{"image":"busybox"}"#).unwrap()).unwrap();
        assert_eq!(name, None);
        assert_eq!(
            r.image.to_string(),
            ImageName::parse("busybox").unwrap().to_string()
        );
        assert_eq!(r.resources, Resources::default());
        assert!(r.mounts.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let full = serde_json::json!({
            "name": "web", "image": "busybox", "entrypoint": ["sh", "-c"], "cmd": ["echo hi"],
            "env": ["A=1"], "working_dir": "/srv//app/", "user": "1000:1000", "hostname": "web-1",
            "labels": {"k": "v"},
            "mounts": [
                {"type": "bind", "source": dir.path(), "destination": "/data/", "readonly": true},
                {"type": "tmpfs", "destination": "/tmp", "options": ["size=64m"]}
            ],
            "read_only": true, "memory": "512m", "cpus": 1.5, "cpu_shares": 512, "pids_limit": 100,
            "restart": "on-failure:3", "runtime": "runc", "stop_timeout": 3, "stop_signal": "SIGINT"
        });
        let (name, r) = container_request(serde_json::from_value(full).unwrap()).unwrap();
        assert_eq!(name.as_deref(), Some("web"));
        assert_eq!(r.working_dir.as_deref(), Some("/srv/app"));
        assert_eq!(r.mounts[0].destination, "/data");
        assert!(r.mounts[0].readonly);
        assert_eq!(r.mounts[1].kind, MountKind::Tmpfs);
        assert_eq!(r.resources.memory, Some(512 << 20));
        assert_eq!(r.resources.cpu_quota, Some(150_000));
        assert_eq!(r.resources.cpu_period, Some(100_000));
        assert_eq!(r.resources.cpu_shares, Some(512));
        assert_eq!(r.resources.pids_limit, Some(100));
        assert_eq!(r.restart.to_string(), "on-failure:3");
        assert_eq!(r.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(r.stop_timeout, Some(3));
    }

    #[test]
    fn quantities_as_numbers_or_strings() {
        let (_, r) =
            container_request(body(r#"{"image":"busybox","memory":67108864,"cpus":"2"}"#).unwrap())
                .unwrap();
        assert_eq!(r.resources.memory, Some(64 << 20));
        assert_eq!(r.resources.cpu_quota, Some(200_000));
        let (_, r) = container_request(body(r#"{"image":"busybox","cpus":1}"#).unwrap()).unwrap();
        assert_eq!(r.resources.cpu_quota, Some(100_000));
        // Round trip of the request type.
        let b = body(r#"{"image":"busybox","memory":"1g","cpus":0.5}"#).unwrap();
        assert_eq!(b.memory, Some(Quantity::Text("1g".into())));
        assert_eq!(b.cpus, Some(Quantity::Float(0.5)));
        let again: CreateContainerRequest =
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn bad_values_name_the_field_and_value() {
        let m = msg(container_request(
            body(r#"{"image":"busybox","memory":"12x"}"#).unwrap(),
        ));
        assert!(m.contains("memory") && m.contains("12x"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","memory":-5}"#).unwrap(),
        ));
        assert!(m.contains("memory") && m.contains("-5"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","memory":1.5}"#).unwrap(),
        ));
        assert!(m.contains("memory"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","memory":1024}"#).unwrap(),
        ));
        assert!(m.contains("memory") && m.contains("1024"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","cpus":-1}"#).unwrap(),
        ));
        assert!(m.contains("cpus") && m.contains("-1"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","restart":"sometimes"}"#).unwrap(),
        ));
        assert!(m.contains("restart") && m.contains("sometimes"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","stop_signal":"NOPE"}"#).unwrap(),
        ));
        assert!(m.contains("signal") && m.contains("NOPE"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","env":["NOEQUALS"]}"#).unwrap(),
        ));
        assert!(m.contains("NOEQUALS"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","cpu_shares":1}"#).unwrap(),
        ));
        assert!(m.contains("cpu shares"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","working_dir":"rel"}"#).unwrap(),
        ));
        assert!(m.contains("working directory") && m.contains("rel"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","mounts":[{"type":"bind","destination":"/x"}]}"#).unwrap(),
        ));
        assert!(m.contains("source"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","mounts":[{"type":"bind","source":"/does/not/exist/berth","destination":"/x"}]}"#).unwrap(),
        ));
        assert!(m.contains("/does/not/exist/berth"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","name":"-bad"}"#).unwrap(),
        ));
        assert!(m.contains("-bad"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","hostname":"a b"}"#).unwrap(),
        ));
        assert!(m.contains("hostname"), "{m}");
        assert!(container_request(body(r#"{"image":"UPPER CASE"}"#).unwrap()).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = body(r#"{"image":"busybox","memroy":"1g"}"#).unwrap_err();
        assert!(e.to_string().contains("memroy"), "{e}");
        let e =
            body(r#"{"image":"busybox","mounts":[{"type":"bind","src":"/a","destination":"/b"}]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("src"), "{e}");
        let e = body(r#"{"image":"busybox","mounts":[{"type":"volume","destination":"/b"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("volume"), "{e}");
        let e = body(r#"{"image":"busybox","memory":true}"#).unwrap_err();
        assert!(e.to_string().contains("512m"), "{e}");
        assert!(serde_json::from_str::<ExecRequestBody>(r#"{"cmd":["ls"],"tty":true}"#).is_err());
    }

    #[test]
    fn network_and_ports() {
        let (_, r) = container_request(
            body(
                r#"{"image":"busybox","network":"n1","ports":[
                    {"host_port":18080,"container_port":80},
                    {"host_port":18080,"container_port":80,"protocol":"udp"},
                    {"host_port":5353,"container_port":53,"protocol":"udp","host_ip":"127.0.0.1"}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r.network.as_deref(), Some("n1"));
        assert_eq!(
            r.ports,
            [
                PortMapping {
                    host_port: 18080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None
                },
                PortMapping {
                    host_port: 18080,
                    container_port: 80,
                    protocol: Protocol::Udp,
                    host_ip: None
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some(Ipv4Addr::LOCALHOST)
                },
            ]
        );
        let (_, r) = container_request(body(r#"{"image":"busybox"}"#).unwrap()).unwrap();
        assert_eq!(r.network, None);
        assert!(r.ports.is_empty());
        // Parsed `-p` values round-trip through the body.
        let p = berth_engine::network::parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(port_of(&PortRequest::from(p)).unwrap(), p);

        let m = msg(container_request(
            body(r#"{"image":"busybox","ports":[{"host_port":0,"container_port":80}]}"#).unwrap(),
        ));
        assert!(m.contains("1 to 65535"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","ports":[{"host_port":80,"container_port":0}]}"#).unwrap(),
        ));
        assert!(m.contains("1 to 65535"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","ports":[{"host_port":80,"container_port":80,"host_ip":"::1"}]}"#)
                .unwrap(),
        ));
        assert!(m.contains("::1"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","ports":[{"host_port":80,"container_port":80},{"host_port":80,"container_port":81}]}"#)
                .unwrap(),
        ));
        assert!(m.contains("same host port"), "{m}");
        let m = msg(container_request(
            body(r#"{"image":"busybox","network":""}"#).unwrap(),
        ));
        assert!(m.contains("network"), "{m}");
        // Out of range, unknown protocols and unknown fields are refused by the parser.
        assert!(
            body(r#"{"image":"busybox","ports":[{"host_port":65536,"container_port":80}]}"#)
                .is_err()
        );
        assert!(body(
            r#"{"image":"busybox","ports":[{"host_port":80,"container_port":80,"protocol":"sctp"}]}"#
        )
        .is_err());
        let e = body(r#"{"image":"busybox","ports":[{"host_port":80,"container_port":80,"hostip":"1.2.3.4"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("hostip"), "{e}");
    }

    #[test]
    fn exec_bodies() {
        let r = exec_request(ExecRequestBody {
            cmd: vec!["ls".into(), "-l".into()],
            env: vec!["A=1".into()],
            working_dir: Some("/tmp/".into()),
            user: Some("1000:100".into()),
        })
        .unwrap();
        assert_eq!(r.args, ["ls", "-l"]);
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        assert_eq!(r.user, Some((1000, 100)));
        assert_eq!(parse_exec_user("7").unwrap(), (7, 0));
        for bad in ["", "root", "1:", ":1", "1:2:3", "-1", "99999999999"] {
            assert!(
                msg(parse_exec_user(bad)).contains(&format!("{bad:?}")),
                "{bad}"
            );
        }
        assert!(msg(exec_request(ExecRequestBody::default())).contains("cmd"));
        assert!(exec_request(ExecRequestBody {
            cmd: vec!["ls".into()],
            env: vec!["=x".into()],
            ..Default::default()
        })
        .is_err());
    }

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded_pairs(q)
    }

    /// What `web::Query<Vec<(String, String)>>` gives a handler.
    fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
        actix_web::web::Query::<Vec<(String, String)>>::from_query(q)
            .unwrap()
            .into_inner()
    }

    #[test]
    fn list_filters() {
        let f = ListFilter::parse(&pairs(
            "namespace=dev&status=running&status=paused,stopped&label=a%3Db&label=c",
        ))
        .unwrap();
        assert_eq!(f.namespace.as_deref(), Some("dev"));
        assert_eq!(
            f.statuses,
            [Status::Running, Status::Paused, Status::Stopped]
        );
        assert_eq!(
            f.labels,
            [
                ("a".to_string(), Some("b".to_string())),
                ("c".to_string(), None)
            ]
        );
        // `label=k=v` unescaped works too.
        let f = ListFilter::parse(&pairs("label=k=v=w")).unwrap();
        assert_eq!(f.labels, [("k".to_string(), Some("v=w".to_string()))]);
        assert!(msg(ListFilter::parse(&pairs("status=up"))).contains("\"up\""));
        assert!(msg(ListFilter::parse(&pairs("all=true"))).contains("\"all\""));
        assert!(ListFilter::parse(&pairs("label==v")).is_err());
        assert!(ListFilter::parse(&pairs("label=")).is_err());
    }

    #[test]
    fn logs_queries() {
        let q: LogsQuery = actix_web::web::Query::<LogsQuery>::from_query(
            "follow&tail=5&since=1700000000.25&timestamps=1&stderr=false",
        )
        .unwrap()
        .into_inner();
        let (opts, format, follow) = logs_options(&q).unwrap();
        assert!(follow);
        assert_eq!(opts.tail, Some(5));
        assert!(opts.stdout && !opts.stderr);
        assert_eq!(
            opts.since,
            DateTime::from_timestamp(1_700_000_000, 250_000_000)
        );
        assert_eq!(format, LogFormat::Text { timestamps: true });
        let q: LogsQuery = actix_web::web::Query::<LogsQuery>::from_query(
            "tail=all&format=json&since=2026-01-02T03:04:05.5%2B01:00",
        )
        .unwrap()
        .into_inner();
        let (opts, format, follow) = logs_options(&q).unwrap();
        assert!(!follow);
        assert_eq!(opts.tail, None);
        assert_eq!(format, LogFormat::Json);
        assert_eq!(
            opts.since.unwrap().to_rfc3339(),
            "2026-01-02T02:04:05.500+00:00"
        );
        for bad in [
            "tail=x",
            "since=yesterday",
            "format=xml",
            "stdout=0&stderr=0",
            "since=1.",
        ] {
            let q = actix_web::web::Query::<LogsQuery>::from_query(bad)
                .unwrap()
                .into_inner();
            assert!(logs_options(&q).is_err(), "{bad}");
        }
        assert!(actix_web::web::Query::<LogsQuery>::from_query("follow=maybe").is_err());
        assert!(actix_web::web::Query::<LogsQuery>::from_query("bogus=1").is_err());
    }

    #[test]
    fn log_lines_render() {
        let rec = LogRecord {
            at: DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            stream: berth_engine::logs::Stream::Stderr,
            text: b"caf\xc3\xa9 \xff".to_vec(),
        };
        assert_eq!(
            LogFormat::Text { timestamps: false }.render(&rec),
            b"caf\xc3\xa9 \xff\n"
        );
        assert_eq!(
            LogFormat::Text { timestamps: true }.render(&rec),
            b"2023-11-14T22:13:20.000000005Z caf\xc3\xa9 \xff\n"
        );
        let json = LogFormat::Json.render(&rec);
        assert_eq!(json.last(), Some(&b'\n'));
        let line: LogLine = serde_json::from_slice(&json).unwrap();
        assert_eq!(line.stream, "stderr");
        assert_eq!(line.line, "café \u{fffd}");
        assert_eq!(line.at, rec.at);
    }

    #[test]
    fn wait_answers() {
        assert_eq!(
            wait_response(None),
            WaitResponse {
                exit_code: None,
                signal: None,
                oom_killed: false,
                at: None
            }
        );
        let at = Utc::now();
        let w = wait_response(Some(&ExitStatus {
            code: Some(137),
            signal: Some(9),
            oom_killed: true,
            at,
        }));
        assert_eq!(w.exit_code, Some(137));
        assert_eq!(w.signal, Some(9));
        assert!(w.oom_killed);
        assert_eq!(w.at, Some(at));
    }
}
