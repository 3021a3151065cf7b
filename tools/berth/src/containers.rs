//! `berth run|create|start|ps|logs|stop|kill|pause|unpause|rm|exec|inspect|wait`.
//!
//! Flags are turned into the API's request bodies and queries by pure functions
//! ([`CreateArgs::request`], [`PsArgs::query`], [`LogsArgs::query`]) so that they are
//! tested without a daemon; the commands only call the client and print.

use std::io::Write;

use anyhow::{bail, Context};
use berth_engine::container::MountKind;
use berth_http::api::types::*;
use berth_http::client::{encode_path, Client, ClientError};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::output::{json, table};

/// Flags of `berth create` and `berth run`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Name of the container (default: its short id)
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable KEY=VALUE, or KEY to take it from this shell (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User: name|uid[:group|gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Hostname of the container
    #[arg(long)]
    pub hostname: Option<String>,
    /// Label KEY=VALUE (repeatable)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 1.5)
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight (2-262144)
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// Most processes in the container (-1: no limit)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Restart policy: no, always, on-failure[:N]
    #[arg(long)]
    pub restart: Option<String>,
    /// Bind mount SOURCE:DESTINATION[:ro|rw] (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs DESTINATION[:OPTIONS] (repeatable; options comma-separated)
    #[arg(long, value_name = "DST[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// OCI runtime to use
    #[arg(long)]
    pub runtime: Option<String>,
    /// Seconds between the stop signal and SIGKILL
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Signal sent by stop (e.g. TERM, SIGINT, 15)
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Replace the image's entrypoint ("" to clear it)
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Network: a network's name, bridge (the default network), none, host or
    /// container:NAME|ID
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a port on the host: [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp] (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<String>,
    /// Image
    pub image: String,
    /// Command and arguments (replace the image's cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// Flags of `berth run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// Flags of `berth ps`.
#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show every container (default: running, paused and restarting ones)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only print the short ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter status=STATUS or label=KEY[=VALUE] (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// Flags of `berth logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep printing new lines until the container stops
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (or all)
    #[arg(long, value_name = "N")]
    pub tail: Option<String>,
    /// Print each line's time
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Lines since a time: RFC 3339, unix seconds, or a duration ago (10s, 5m, 2h)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Container
    pub container: String,
}

/// Flags of `berth exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Environment variable KEY=VALUE, or KEY to take it from this shell (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User: uid[:gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container
    pub container: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// The container commands (flattened into the CLI's top level).
#[derive(Debug, Clone, Subcommand)]
pub enum ContainerCommand {
    /// Create and start a container; without -d, print its output and exit with its code
    Run(RunArgs),
    /// Create a container (not started) and print its id
    Create(CreateArgs),
    /// Start containers
    Start {
        /// Containers (id, name or id prefix)
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(PsArgs),
    /// Print a container's output
    Logs(LogsArgs),
    /// Stop containers (stop signal, SIGKILL after the timeout)
    Stop {
        /// Seconds before SIGKILL (default: the container's stop timeout)
        #[arg(short = 't', long = "time", visible_alias = "timeout")]
        timeout: Option<u64>,
        /// Signal to send first (default: the container's stop signal)
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers
    Kill {
        /// Signal (default: KILL)
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze containers
    Pause {
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw containers
    Unpause {
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Kill running containers first
        #[arg(short = 'f', long)]
        force: bool,
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Show a container as JSON
    Inspect {
        /// Container
        container: String,
    },
    /// Wait for containers to stop and print their exit codes
    Wait {
        /// Containers
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// `-e KEY=VALUE` as is; `-e KEY` takes KEY from `lookup` (this shell's environment) and
/// is dropped when unset, as Docker does.
pub fn env_entries(
    raw: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(raw.len());
    for e in raw {
        match e.split_once('=') {
            Some(("", _)) => bail!("invalid environment variable {e:?}: the name is empty"),
            Some(_) => out.push(e.clone()),
            None if e.is_empty() => bail!("invalid environment variable \"\": use KEY=VALUE"),
            None => {
                if let Some(v) = lookup(e) {
                    out.push(format!("{e}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `-l KEY=VALUE` or `-l KEY` (an empty value).
pub fn labels(raw: &[String]) -> anyhow::Result<berth_engine::ids::Labels> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !l.is_empty() => Ok((l.clone(), String::new())),
            _ => bail!("invalid label {l:?}: use KEY=VALUE"),
        })
        .collect()
}

/// `--tmpfs DST[:OPTS]`.
pub fn tmpfs_mount(raw: &str) -> anyhow::Result<MountRequest> {
    let (dst, opts) = raw.split_once(':').unwrap_or((raw, ""));
    if dst.is_empty() {
        bail!("invalid tmpfs {raw:?}: use DESTINATION[:OPTIONS]");
    }
    Ok(MountRequest {
        kind: MountKind::Tmpfs,
        source: None,
        destination: dst.to_string(),
        readonly: false,
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    })
}

impl CreateArgs {
    /// The `POST /v1/containers` body these flags ask for; `lookup` reads this shell's
    /// environment (for `-e KEY`).
    pub fn request(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<CreateContainerRequest> {
        let mut mounts = Vec::with_capacity(self.volumes.len() + self.tmpfs.len());
        for v in &self.volumes {
            let m = berth_engine::container::parse::parse_mount_flag(v)?;
            mounts.push(MountRequest {
                kind: m.kind,
                source: Some(m.source),
                destination: m.destination,
                readonly: m.readonly,
                options: m.options,
            });
        }
        for t in &self.tmpfs {
            mounts.push(tmpfs_mount(t)?);
        }
        let ports = self
            .publish
            .iter()
            .map(|p| berth_engine::network::parse_publish(p).map(PortRequest::from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CreateContainerRequest {
            name: self.name.clone(),
            image: self.image.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            env: env_entries(&self.env, lookup)?,
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            labels: labels(&self.labels)?,
            mounts,
            read_only: self.read_only,
            memory: self.memory.clone().map(Quantity::Text),
            cpus: self.cpus.clone().map(Quantity::Text),
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            restart: self.restart.clone(),
            runtime: self.runtime.clone(),
            stop_timeout: self.stop_timeout,
            stop_signal: self.stop_signal.clone(),
            network: self.network.clone(),
            ports,
        })
    }
}

/// The statuses `berth ps` shows without `-a`: containers that are up.
const UP: [&str; 3] = ["running", "paused", "restarting"];

impl PsArgs {
    /// The query of `GET /v1/containers` (without the namespace).
    pub fn query(&self) -> anyhow::Result<String> {
        let mut parts = Vec::new();
        let mut status_given = false;
        for f in &self.filters {
            match f.split_once('=') {
                Some(("status", v)) if !v.is_empty() => {
                    status_given = true;
                    parts.push(format!("status={}", encode_path(v)));
                }
                Some(("label", v)) if !v.is_empty() => {
                    parts.push(format!("label={}", encode_path(v)));
                }
                _ => bail!("invalid filter {f:?}: use status=STATUS or label=KEY[=VALUE]"),
            }
        }
        if !self.all && !status_given {
            parts.extend(UP.iter().map(|s| format!("status={s}")));
        }
        Ok(parts.join("&"))
    }
}

/// A `--since` value as the API takes it: a duration ago (`10s`, `5m`, `2h`, `1d`)
/// becomes unix seconds; anything else is passed on.
pub fn since_value(raw: &str, now: DateTime<Utc>) -> String {
    let units: [(char, i64); 4] = [('s', 1), ('m', 60), ('h', 3600), ('d', 86400)];
    for (unit, secs) in units {
        if let Some(n) = raw.strip_suffix(unit) {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                if let Some(ago) = n.parse::<i64>().ok().and_then(|n| n.checked_mul(secs)) {
                    return (now.timestamp() - ago).max(0).to_string();
                }
            }
        }
    }
    raw.to_string()
}

impl LogsArgs {
    /// The query of `GET /v1/containers/{id}/logs` (without the namespace).
    pub fn query(&self, now: DateTime<Utc>) -> String {
        let mut parts = vec!["format=json".to_string()];
        if self.follow {
            parts.push("follow=true".into());
        }
        if let Some(t) = &self.tail {
            parts.push(format!("tail={}", encode_path(t)));
        }
        if let Some(s) = &self.since {
            parts.push(format!("since={}", encode_path(&since_value(s, now))));
        }
        parts.join("&")
    }
}

/// `5s`, `3m`, `2h`, `4d`.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The STATUS column: `running`, `exited (3) 5s ago`, `created`…
pub fn status_text(c: &ContainerView, now: DateTime<Utc>) -> String {
    match (c.status.as_str(), &c.exit) {
        ("stopped", Some(e)) => format!(
            "exited ({}) {} ago",
            e.code.map_or("?".to_string(), |c| c.to_string()),
            ago(e.at, now)
        ),
        ("restarting", _) => format!("restarting ({})", c.restart_count),
        (s, _) => s.to_string(),
    }
}

/// The COMMAND column: the entrypoint and cmd the container was created with (the
/// image's own when it overrides neither: shown empty), quoted and cut at 30
/// characters.
pub fn command_text(c: &ContainerView) -> String {
    let mut words: Vec<&str> = Vec::new();
    if let Some(e) = &c.config.entrypoint {
        words.extend(e.iter().map(String::as_str));
    }
    if let Some(cmd) = &c.config.cmd {
        words.extend(cmd.iter().map(String::as_str));
    }
    if words.is_empty() {
        return String::new();
    }
    let joined = words.join(" ");
    let cut: String = if joined.chars().count() > 30 {
        joined
            .chars()
            .take(29)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        joined
    };
    format!("\"{cut}\"")
}

/// The PORTS column: `0.0.0.0:18080->80/tcp, 127.0.0.1:5353->53/udp`.
pub fn ports_text(c: &ContainerView) -> String {
    c.network
        .ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                p.host_port,
                p.container_port,
                p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `berth ps`.
pub fn ps_rows(list: &[ContainerView], now: DateTime<Utc>) -> Vec<Vec<String>> {
    list.iter()
        .map(|c| {
            vec![
                c.id.chars().take(12).collect(),
                c.name.clone(),
                c.image.clone(),
                status_text(c, now),
                format!("{} ago", ago(c.created_at, now)),
                command_text(c),
                ports_text(c),
            ]
        })
        .collect()
}

/// A log line's time as the file has it (RFC 3339, nine digits).
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Writes a log line to stdout or stderr as its stream says, flushed at once.
fn print_line(l: &LogLine, timestamps: bool) -> std::io::Result<()> {
    let text = if timestamps {
        format!("{} {}\n", timestamp(l.at), l.line)
    } else {
        format!("{}\n", l.line)
    };
    if l.stream == "stderr" {
        let mut err = std::io::stderr().lock();
        err.write_all(text.as_bytes())?;
        err.flush()
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

fn shell_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Runs `f` on every container named; errors are printed one per line and make the exit
/// code 1, as Docker does.
async fn each<F, Fut>(keys: &[String], mut f: F) -> anyhow::Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut code = 0;
    for k in keys {
        if let Err(e) = f(k.clone()).await {
            eprintln!(
                "berth: {k}: {}",
                format!("{e:#}").lines().next().unwrap_or("error")
            );
            code = 1;
        }
    }
    Ok(code)
}

/// Runs a container command; returns the exit code.
pub async fn command(
    client: &Client,
    ns: &str,
    as_json: bool,
    c: &ContainerCommand,
) -> anyhow::Result<i32> {
    match c {
        ContainerCommand::Run(a) => run(client, ns, as_json, a).await,
        ContainerCommand::Create(a) => {
            let res = client.create_container(ns, &a.request(&shell_env)?).await?;
            if as_json {
                json(&res)?;
            } else {
                println!("{}", res.container.id);
            }
            Ok(0)
        }
        ContainerCommand::Start { containers } => {
            verb_each(client, ns, as_json, containers, "start", String::new()).await
        }
        ContainerCommand::Stop {
            timeout,
            signal,
            containers,
        } => {
            let mut q = Vec::new();
            if let Some(t) = timeout {
                q.push(format!("timeout={t}"));
            }
            if let Some(s) = signal {
                q.push(format!("signal={}", encode_path(s)));
            }
            verb_each(client, ns, as_json, containers, "stop", q.join("&")).await
        }
        ContainerCommand::Kill { signal, containers } => {
            let q = signal
                .as_ref()
                .map(|s| format!("signal={}", encode_path(s)))
                .unwrap_or_default();
            verb_each(client, ns, as_json, containers, "kill", q).await
        }
        ContainerCommand::Pause { containers } => {
            verb_each(client, ns, as_json, containers, "pause", String::new()).await
        }
        ContainerCommand::Unpause { containers } => {
            verb_each(client, ns, as_json, containers, "resume", String::new()).await
        }
        ContainerCommand::Rm { force, containers } => {
            each(containers, |k| async move {
                let d = client.delete_container(ns, &k, *force).await?;
                if as_json {
                    json(&d)?;
                } else {
                    println!("{k}");
                }
                Ok(())
            })
            .await
        }
        ContainerCommand::Ps(a) => {
            let list = client.containers(ns, &a.query()?).await?;
            if as_json {
                json(&list)?;
            } else if a.quiet {
                for c in &list.containers {
                    println!("{}", c.id.chars().take(12).collect::<String>());
                }
            } else {
                table(
                    &[
                        "ID", "NAME", "IMAGE", "STATUS", "CREATED", "COMMAND", "PORTS",
                    ],
                    &ps_rows(&list.containers, Utc::now()),
                );
            }
            Ok(0)
        }
        ContainerCommand::Logs(a) => {
            let mut lines = client
                .container_logs(ns, &a.container, &a.query(Utc::now()))
                .await?;
            while let Some(l) = lines.next_json::<LogLine>().await {
                print_line(&l?, a.timestamps)?;
            }
            Ok(0)
        }
        ContainerCommand::Exec(a) => {
            let body = ExecRequestBody {
                cmd: a.cmd.clone(),
                env: env_entries(&a.env, &shell_env)?,
                working_dir: a.workdir.clone(),
                user: a.user.clone(),
            };
            let out = client.exec(ns, &a.container, &body).await?;
            if as_json {
                json(&out)?;
            } else {
                std::io::stdout().write_all(out.stdout.as_bytes())?;
                std::io::stdout().flush()?;
                std::io::stderr().write_all(out.stderr.as_bytes())?;
                if out.truncated {
                    eprintln!("berth: the output was truncated by the daemon");
                }
            }
            Ok(out.exit_code)
        }
        ContainerCommand::Inspect { container } => {
            json(&client.container(ns, container).await?)?;
            Ok(0)
        }
        ContainerCommand::Wait { containers } => {
            each(containers, |k| async move {
                let w = client.wait_container(ns, &k).await?;
                if as_json {
                    json(&w)?;
                } else {
                    println!(
                        "{}",
                        w.exit_code.map_or("none".to_string(), |c| c.to_string())
                    );
                }
                Ok(())
            })
            .await
        }
    }
}

async fn verb_each(
    client: &Client,
    ns: &str,
    as_json: bool,
    keys: &[String],
    verb: &str,
    query: String,
) -> anyhow::Result<i32> {
    let query = &query;
    each(keys, |k| async move {
        let res = client.container_verb(ns, &k, verb, query).await?;
        if as_json {
            json(&res)?;
        } else {
            println!("{k}");
        }
        Ok(())
    })
    .await
}

/// `berth run`.
async fn run(client: &Client, ns: &str, as_json: bool, a: &RunArgs) -> anyhow::Result<i32> {
    if a.detach && a.rm {
        bail!("--rm cannot be used with -d: the daemon does not remove containers when they exit");
    }
    let req = a.create.request(&shell_env)?;
    let created = match client.create_container(ns, &req).await {
        Err(ClientError::Api {
            status: 404,
            message,
            ..
        }) if message.contains("image") && crate::registry::names_registry(&req.image) => {
            // A missing image from a registry is pulled first (progress on stderr).
            eprintln!("image {} is not here; pulling it", req.image);
            let pulled = client
                .pull_image(
                    ns,
                    &berth_http::api::types::PullImageRequest {
                        reference: req.image.clone(),
                        platform: None,
                        auth: None,
                    },
                )
                .await?;
            eprintln!("pulled {} {}", pulled.image, pulled.digest);
            client.create_container(ns, &req).await?
        }
        other => other?,
    };
    let id = created.container.id.clone();
    if a.detach {
        let res = client.container_verb(ns, &id, "start", "").await?;
        if as_json {
            json(&res)?;
        } else {
            println!("{id}");
        }
        return Ok(0);
    }
    let outcome = attach(client, ns, &id).await;
    if a.rm {
        if let Err(e) = client.delete_container(ns, &id, true).await {
            eprintln!("berth: removing container {id}: {e}");
        }
    }
    let wait = outcome?;
    if as_json {
        json(&wait)?;
    }
    Ok(match wait.exit_code {
        Some(code) => code,
        None => {
            eprintln!("berth: the exit code of container {id} is unknown");
            255
        }
    })
}

/// Starts `id`, prints its output until it ends, and waits for its exit. The first
/// Ctrl-C stops the container, the second kills it.
async fn attach(client: &Client, ns: &str, id: &str) -> anyhow::Result<WaitResponse> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupts = signal(SignalKind::interrupt()).context("catching Ctrl-C")?;
    client.container_verb(ns, id, "start", "").await?;
    let mut lines = client
        .container_logs(ns, id, "follow=true&format=json&tail=all")
        .await?;
    let mut interrupted = 0u32;
    loop {
        tokio::select! {
            line = lines.next_json::<LogLine>() => match line {
                Some(l) => print_line(&l?, false)?,
                None => break,
            },
            Some(()) = interrupts.recv() => {
                interrupted += 1;
                let verb = if interrupted == 1 { "stop" } else { "kill" };
                let (client, ns, id) = (client.clone(), ns.to_string(), id.to_string());
                tokio::spawn(async move {
                    if let Err(e) = client.container_verb(&ns, &id, verb, "").await {
                        eprintln!("berth: {verb} {id}: {e}");
                    }
                });
            }
        }
    }
    // The stream ends once the container no longer runs and its log is read: its exit
    // is in the state already, readable without queueing behind the container's actor.
    let v = client.container(ns, id).await?;
    if v.status == "stopped" {
        if let Some(e) = v.exit {
            return Ok(WaitResponse {
                exit_code: e.code,
                signal: e.signal,
                oom_killed: e.oom_killed,
                at: Some(e.at),
            });
        }
    }
    Ok(client.wait_container(ns, id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{parse, try_parse};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn run_flags_become_the_request() {
        let ContainerCommand::Run(a) = parse(&[
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "A=1",
            "-e",
            "HOME",
            "-w",
            "/srv",
            "-u",
            "1000:1000",
            "--hostname",
            "h1",
            "-l",
            "k=v",
            "-l",
            "flag",
            "-m",
            "512m",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "-1",
            "--read-only",
            "--restart",
            "on-failure:3",
            "-v",
            "/tmp:/data:ro",
            "--tmpfs",
            "/run:size=64m,noexec",
            "--runtime",
            "runc",
            "--stop-timeout",
            "3",
            "--stop-signal",
            "INT",
            "--entrypoint",
            "/bin/sh",
            "busybox",
            "-c",
            "echo -n hi",
            "--rm",
        ]) else {
            panic!("not run")
        };
        assert!(a.detach && !a.rm);
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let r = a.create.request(&lookup).unwrap();
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.image, "busybox");
        assert_eq!(r.entrypoint, Some(vec!["/bin/sh".to_string()]));
        // Everything after the image is the command, flags included.
        assert_eq!(
            r.cmd,
            Some(vec!["-c".to_string(), "echo -n hi".into(), "--rm".into()])
        );
        assert_eq!(r.env, ["A=1", "HOME=/root"]);
        assert_eq!(r.working_dir.as_deref(), Some("/srv"));
        assert_eq!(r.user.as_deref(), Some("1000:1000"));
        assert_eq!(r.hostname.as_deref(), Some("h1"));
        assert_eq!(r.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(r.labels.get("flag").map(String::as_str), Some(""));
        assert_eq!(r.memory, Some(Quantity::Text("512m".into())));
        assert_eq!(r.cpus, Some(Quantity::Text("1.5".into())));
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.pids_limit, Some(-1));
        assert!(r.read_only);
        assert_eq!(r.restart.as_deref(), Some("on-failure:3"));
        assert_eq!(
            r.mounts,
            [
                MountRequest {
                    kind: MountKind::Bind,
                    source: Some("/tmp".into()),
                    destination: "/data".into(),
                    readonly: true,
                    options: vec![],
                },
                MountRequest {
                    kind: MountKind::Tmpfs,
                    source: None,
                    destination: "/run".into(),
                    readonly: false,
                    options: vec!["size=64m".into(), "noexec".into()],
                }
            ]
        );
        assert_eq!(r.runtime.as_deref(), Some("runc"));
        assert_eq!(r.stop_timeout, Some(3));
        assert_eq!(r.stop_signal.as_deref(), Some("INT"));
        // The body the daemon receives holds only what was given.
        let minimal = match parse(&["create", "busybox"]) {
            ContainerCommand::Create(a) => a.request(&no_env).unwrap(),
            _ => panic!(),
        };
        assert_eq!(
            serde_json::to_value(&minimal).unwrap(),
            serde_json::json!({"image": "busybox"})
        );
        let cleared = match parse(&["create", "--entrypoint", "", "busybox"]) {
            ContainerCommand::Create(a) => a.request(&no_env).unwrap(),
            _ => panic!(),
        };
        assert_eq!(cleared.entrypoint, Some(vec![]));
        assert_eq!(cleared.cmd, None);
    }

    #[test]
    fn bad_flags_are_refused_before_the_daemon() {
        for args in [
            &["create", "-v", "relative:/data", "busybox"][..],
            &["create", "-v", "/a", "busybox"],
            &["create", "-l", "=v", "busybox"],
            &["create", "-e", "=v", "busybox"],
            &["create", "--tmpfs", ":size=1m", "busybox"],
            &["create", "-p", "80", "busybox"],
            &["create", "-p", "0:80", "busybox"],
            &["create", "--publish", "8080:80/sctp", "busybox"],
        ] {
            let ContainerCommand::Create(a) = parse(args) else {
                panic!()
            };
            assert!(a.request(&no_env).is_err(), "{args:?}");
        }
        assert!(try_parse::<ContainerCommand>(&["run"]).is_err());
        assert!(try_parse::<ContainerCommand>(&["exec", "ctr"]).is_err());
        assert!(try_parse::<ContainerCommand>(&["start"]).is_err());
    }

    #[test]
    fn network_and_publish_flags() {
        let ContainerCommand::Run(a) = parse(&[
            "run",
            "--network",
            "n1",
            "-p",
            "18080:80",
            "--publish",
            "127.0.0.1:5353:53/udp",
            "busybox",
        ]) else {
            panic!("not run")
        };
        let r = a.create.request(&no_env).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "image": "busybox", "network": "n1",
                "ports": [
                    {"host_port": 18080, "container_port": 80, "protocol": "tcp"},
                    {"host_port": 5353, "container_port": 53, "protocol": "udp", "host_ip": "127.0.0.1"}
                ]
            })
        );
        let ContainerCommand::Create(a) = parse(&["create", "--network", "none", "busybox"]) else {
            panic!()
        };
        assert_eq!(a.request(&no_env).unwrap().network.as_deref(), Some("none"));
    }

    #[test]
    fn exec_and_stop_flags() {
        let ContainerCommand::Exec(a) = parse(&[
            "exec", "-e", "X=1", "-w", "/tmp", "-u", "0:0", "web", "ls", "-la", "-e",
        ]) else {
            panic!()
        };
        assert_eq!(a.container, "web");
        assert_eq!(a.cmd, ["ls", "-la", "-e"]);
        assert_eq!(a.env, ["X=1"]);
        let ContainerCommand::Stop {
            timeout,
            containers,
            ..
        } = parse(&["stop", "-t", "5", "a", "b"])
        else {
            panic!()
        };
        assert_eq!(timeout, Some(5));
        assert_eq!(containers, ["a", "b"]);
        let ContainerCommand::Kill { signal, .. } = parse(&["kill", "-s", "HUP", "a"]) else {
            panic!()
        };
        assert_eq!(signal.as_deref(), Some("HUP"));
    }

    #[test]
    fn ps_queries() {
        let q = |args: &[&str]| match parse(args) {
            ContainerCommand::Ps(a) => a.query(),
            _ => panic!(),
        };
        assert_eq!(
            q(&["ps"]).unwrap(),
            "status=running&status=paused&status=restarting"
        );
        assert_eq!(q(&["ps", "-a"]).unwrap(), "");
        assert_eq!(
            q(&["ps", "--filter", "status=stopped", "-f", "label=a=b"]).unwrap(),
            "status=stopped&label=a%3Db"
        );
        assert_eq!(
            q(&["ps", "-f", "label=tier"]).unwrap(),
            "label=tier&status=running&status=paused&status=restarting"
        );
        assert!(q(&["ps", "-f", "name=x"]).is_err());
        assert!(q(&["ps", "-f", "status="]).is_err());
    }

    #[test]
    fn logs_queries() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ContainerCommand::Logs(a) =
            parse(&["logs", "-f", "--tail", "10", "-t", "--since", "5m", "web"])
        else {
            panic!()
        };
        assert!(a.timestamps);
        assert_eq!(
            a.query(now),
            "format=json&follow=true&tail=10&since=1699999700"
        );
        assert_eq!(
            since_value("2026-01-02T03:04:05Z", now),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(since_value("1700000000", now), "1700000000");
        assert_eq!(since_value("2h", now), "1699992800");
        assert_eq!(since_value("1d", now), "1699913600");
    }

    fn view(status: &str) -> ContainerView {
        let config: berth_engine::container::ContainerConfig =
            serde_json::from_value(serde_json::json!({
                "image": "busybox", "image_digest": format!("sha256:{}", "a".repeat(64)),
                "entrypoint": null, "cmd": ["sh", "-c", "echo a very long command that goes on"],
                "env": [], "working_dir": null, "user": null, "hostname": null, "labels": {},
                "mounts": [], "read_only": false, "resources": {}, "restart": {"name": "no"},
                "runtime": "runc", "stop_timeout": 10, "stop_signal": null
            }))
            .unwrap();
        ContainerView {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "web".into(),
            namespace: "default".into(),
            image: "busybox".into(),
            image_digest: config.image_digest.to_string(),
            status: status.into(),
            pid: None,
            shim_pid: None,
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            started_at: None,
            exit: None,
            exit_reason: None,
            restart_count: 0,
            restart_policy: "no".into(),
            labels: Default::default(),
            last_error: None,
            pending: None,
            network: Default::default(),
            config,
        }
    }

    #[test]
    fn ps_table_cells() {
        let now = DateTime::from_timestamp(1_700_000_000 + 7265, 0).unwrap();
        let mut stopped = view("stopped");
        stopped.exit = Some(ExitView {
            code: Some(3),
            signal: None,
            oom_killed: false,
            at: now - chrono::Duration::seconds(5),
        });
        let rows = ps_rows(&[view("running"), stopped.clone()], now);
        assert_eq!(
            rows[0],
            [
                "0123456789ab",
                "web",
                "busybox",
                "running",
                "2h ago",
                "\"sh -c echo a very long comman…\"",
                ""
            ]
        );
        let mut published = view("running");
        published.network.ports = vec![
            berth_engine::network::parse_publish("18080:80").unwrap(),
            berth_engine::network::parse_publish("127.0.0.1:5353:53/udp").unwrap(),
        ];
        assert_eq!(
            ports_text(&published),
            "0.0.0.0:18080->80/tcp, 127.0.0.1:5353->53/udp"
        );
        assert_eq!(rows[1][3], "exited (3) 5s ago");
        stopped.exit.as_mut().unwrap().code = None;
        assert_eq!(status_text(&stopped, now), "exited (?) 5s ago");
        assert_eq!(status_text(&view("stopped"), now), "stopped");
        assert_eq!(status_text(&view("created"), now), "created");
        let mut short = view("created");
        short.config.cmd = Some(vec!["true".into()]);
        assert_eq!(command_text(&short), "\"true\"");
        short.config.cmd = None;
        assert_eq!(command_text(&short), "");
        let t = DateTime::from_timestamp(0, 0).unwrap();
        for (secs, want) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (86400 * 3, "3d"),
            (-5, "0s"),
        ] {
            assert_eq!(ago(t, t + chrono::Duration::seconds(secs)), want);
        }
    }

    #[test]
    fn env_from_the_shell() {
        let lookup = |k: &str| (k == "SET").then(|| "v".to_string());
        assert_eq!(
            env_entries(&["A=b=c".into(), "SET".into(), "UNSET".into()], &lookup).unwrap(),
            ["A=b=c", "SET=v"]
        );
        assert!(env_entries(&["".into()], &lookup).is_err());
    }
}
