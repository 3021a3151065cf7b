//! Commands of the CLI.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_http::api::types::{CreateNamespaceRequest, EventView};
use berth_http::client::Client;
use berth_journal::{Journal, JournalError, OpenOptions};
use clap::{Args, Parser, Subcommand};

use crate::output::{json, table};

/// berth — the command-line client of the berth container runtime.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
pub struct Cli {
    /// Daemon address: unix:///path or tcp://host:port
    #[arg(
        long,
        global = true,
        env = "BERTH_HOST",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    /// File holding the bearer token (TCP only)
    #[arg(long, global = true, env = "BERTH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Machine-readable output
    #[arg(long, global = true)]
    json: bool,
    /// Namespace [default: default; for events: all]
    #[arg(long, short = 'n', global = true, env = "BERTH_NAMESPACE")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Client and daemon versions
    Version,
    /// Namespaces
    #[command(subcommand, visible_alias = "namespace")]
    Ns(NsCommand),
    /// Follow the event stream
    Events(EventsArgs),
    /// Inspect the journal (offline with --root)
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Images
    #[command(subcommand)]
    Image(crate::storage::ImageCommand),
    /// Snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The content store
    #[command(subcommand)]
    Content(ContentCommand),
    /// Pull an image from a registry
    Pull(crate::registry::PullArgs),
    /// Push an image to a registry
    Push(crate::registry::PushArgs),
    /// Store credentials for a registry (in the file berthd reads)
    Login(crate::registry::LoginArgs),
    /// Remove unreferenced content and snapshots
    Gc,
    /// System information
    #[command(subcommand)]
    System(SystemCommand),
    /// Networks
    #[command(subcommand)]
    Network(crate::networks::NetworkCommand),
    #[command(flatten)]
    Containers(Box<crate::containers::ContainerCommand>),
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// List snapshots
    #[command(visible_alias = "list")]
    Ls,
}

#[derive(Debug, Subcommand)]
enum ContentCommand {
    /// List blobs
    #[command(visible_alias = "list")]
    Ls,
    /// Replace a blob's labels
    Label {
        /// The blob
        digest: String,
        /// Labels KEY=VALUE (none: clear them)
        labels: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Disk usage
    Df,
}

#[derive(Debug, Subcommand)]
enum NsCommand {
    /// Create a namespace
    Create {
        /// Its name
        name: String,
        /// A label KEY=VALUE (repeatable)
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
    },
    /// List namespaces
    #[command(visible_alias = "list")]
    Ls,
    /// Delete an empty namespace
    #[command(visible_alias = "remove")]
    Rm {
        /// Names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Start after this sequence number (0: from the beginning); default: new events only
    #[arg(long)]
    since: Option<u64>,
    /// Only topics starting with this prefix (comma-separated list allowed)
    #[arg(long)]
    topic: Option<String>,
    /// Stop after this many events
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, Args)]
struct RootArg {
    /// Read the journal of a stopped daemon's root directly, without the daemon
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Numbers about the journal
    Stats(RootArg),
    /// Print records
    Dump {
        #[command(flatten)]
        root: RootArg,
        /// First sequence number
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most records (default: all)
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Check every record and checkpoint
    Verify(RootArg),
}

fn client(cli: &Cli) -> anyhow::Result<Client> {
    let token = match &cli.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading token file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Ok(Client::new(&cli.host, token)?)
}

fn namespace(cli: &Cli) -> &str {
    cli.namespace.as_deref().unwrap_or("default")
}

/// Runs a command; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Version => version(&cli).await,
        Command::Ns(c) => ns(&cli, c).await,
        Command::Events(a) => events(&cli, a).await,
        Command::Journal(c) => journal(&cli, c).await,
        Command::Image(c) => {
            if let crate::storage::ImageCommand::Import {
                platform: Some(p), ..
            } = c
            {
                crate::storage::check_platform(p)?;
            }
            crate::storage::image(&client(&cli)?, namespace(&cli), cli.json, c).await
        }
        Command::Snapshot(SnapshotCommand::Ls) => {
            crate::storage::snapshots(&client(&cli)?, namespace(&cli), cli.json).await
        }
        Command::Content(ContentCommand::Ls) => {
            crate::storage::content(&client(&cli)?, cli.json).await
        }
        Command::Content(ContentCommand::Label { digest, labels }) => {
            let labels = parse_labels(labels)?;
            crate::storage::label(&client(&cli)?, namespace(&cli), cli.json, digest, labels).await
        }
        Command::Pull(a) => {
            crate::registry::pull(&client(&cli)?, namespace(&cli), cli.json, a).await
        }
        Command::Push(a) => {
            crate::registry::push(&client(&cli)?, namespace(&cli), cli.json, a).await
        }
        Command::Login(a) => crate::registry::login(cli.json, a),
        Command::Gc => crate::storage::gc(&client(&cli)?, namespace(&cli), cli.json).await,
        Command::System(SystemCommand::Df) => crate::storage::df(&client(&cli)?, cli.json).await,
        Command::Network(c) => crate::networks::command(&client(&cli)?, cli.json, c).await,
        Command::Containers(c) => {
            crate::containers::command(&client(&cli)?, namespace(&cli), cli.json, c).await
        }
    }
}

async fn version(cli: &Cli) -> anyhow::Result<i32> {
    let server = client(cli)?.version().await?;
    if cli.json {
        json(&serde_json::json!({"client": env!("CARGO_PKG_VERSION"), "server": server}))?;
    } else {
        println!("client: {}", env!("CARGO_PKG_VERSION"));
        println!(
            "server: {} (api {}, {}/{})",
            server.version, server.api_version, server.os, server.arch
        );
    }
    Ok(0)
}

fn parse_labels(raw: &[String]) -> anyhow::Result<berth_engine::ids::Labels> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("label {l:?} must be KEY=VALUE"),
        })
        .collect()
}

async fn ns(cli: &Cli, c: &NsCommand) -> anyhow::Result<i32> {
    let client = client(cli)?;
    match c {
        NsCommand::Create { name, labels } => {
            let res = client
                .create_namespace(&CreateNamespaceRequest {
                    name: name.clone(),
                    labels: parse_labels(labels)?,
                })
                .await?;
            if cli.json {
                json(&res)?;
            } else {
                println!("{}", res.namespace.name);
            }
        }
        NsCommand::Ls => {
            let list = client.namespaces().await?;
            if cli.json {
                json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .namespaces
                    .iter()
                    .map(|n| {
                        vec![
                            n.name.clone(),
                            n.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            n.labels
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                table(&["NAME", "CREATED", "LABELS"], &rows);
            }
        }
        NsCommand::Rm { names } => {
            for name in names {
                let res = client.delete_namespace(name).await?;
                if cli.json {
                    json(&res)?;
                } else {
                    println!("{}", res.deleted);
                }
            }
        }
    }
    Ok(0)
}

fn summary(v: &EventView) -> String {
    match &v.event {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_object() || v.as_object().is_some_and(|o| !o.is_empty()))
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn print_event(as_json: bool, v: &EventView, raw: &str) {
    if as_json {
        println!("{raw}");
    } else {
        println!(
            "{:>8}  {}  {:<24} {:<12} {}/{}  {}",
            v.seq,
            v.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            v.topic,
            v.namespace,
            v.stream.kind,
            v.stream.id,
            summary(v)
        );
    }
}

async fn events(cli: &Cli, a: &EventsArgs) -> anyhow::Result<i32> {
    let client = client(cli)?;
    let mut query: Vec<String> = Vec::new();
    if let Some(t) = &a.topic {
        query.push(format!("topic={}", berth_http::client::encode_path(t)));
    }
    if let Some(n) = &cli.namespace {
        query.push(format!("namespace={}", berth_http::client::encode_path(n)));
    }
    let query = query.join("&");
    let mut last: Option<u64> = a.since;
    let mut seen = 0u64;
    loop {
        let mut stream = client.events(&query, last).await?;
        let mut resync = false;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            match msg.event.as_deref() {
                Some("resync") => {
                    eprintln!(
                        "berth: fell behind the event stream; resuming after {}",
                        last.unwrap_or(0)
                    );
                    resync = true;
                    break;
                }
                Some("shutdown") => {
                    eprintln!("berth: the daemon is shutting down");
                    return Ok(0);
                }
                Some("error") => bail!("event stream error: {}", msg.data),
                _ => {}
            }
            let view = msg.envelope()?;
            print_event(cli.json, &view, &msg.data);
            last = Some(view.seq);
            seen += 1;
            if a.count.is_some_and(|c| seen >= c) {
                return Ok(0);
            }
        }
        if !resync {
            return Ok(0);
        }
        if last.is_none() {
            last = Some(0);
        }
    }
}

fn open_offline(root: &Path) -> anyhow::Result<(Journal, berth_journal::OpenReport)> {
    let dir = root.join("journal");
    if !dir.join("db").exists() && !dir.join("conf").exists() {
        bail!("no journal at {}", dir.display());
    }
    match Journal::open(
        &dir,
        OpenOptions {
            repair: false,
            ..OpenOptions::default()
        },
    ) {
        Ok(j) => Ok(j),
        Err(JournalError::Locked { .. }) => bail!(
            "the journal at {} is in use by a running berthd; stop it, or drop --root to ask the daemon",
            dir.display()
        ),
        Err(e) => Err(e.into()),
    }
}

async fn journal(cli: &Cli, c: &JournalCommand) -> anyhow::Result<i32> {
    match c {
        JournalCommand::Stats(RootArg { root: Some(root) }) => {
            let (j, open) = open_offline(root)?;
            let stats = j.stats()?;
            if cli.json {
                json(
                    &serde_json::json!({"stats": stats, "open": open, "topics": j.topic_counts()?}),
                )?;
            } else {
                print_stats(&stats);
                for (topic, n) in j.topic_counts()? {
                    println!("  {topic:<28} {n}");
                }
                if let Some(cut) = &open.cut {
                    println!(
                        "bad record at seq {}: {} (the daemon will cut there at start)",
                        cut.at_seq, cut.reason
                    );
                }
            }
            Ok(0)
        }
        JournalCommand::Stats(RootArg { root: None }) => {
            let res = client(cli)?.journal_stats().await?;
            if cli.json {
                json(&res)?;
            } else {
                print_stats(&res.stats);
                println!(
                    "last recovery: {} records replayed after checkpoint {} in {} ms",
                    res.recovery.replayed,
                    res.recovery
                        .checkpoint_seq
                        .map_or("none".to_string(), |s| s.to_string()),
                    res.recovery.took_ms
                );
            }
            Ok(0)
        }
        JournalCommand::Dump { root, from, limit } => {
            let limit = limit.unwrap_or(u64::MAX);
            match &root.root {
                Some(root) => {
                    let (j, _) = open_offline(root)?;
                    for (n, rec) in j.iter_from(*from).enumerate() {
                        if n as u64 >= limit {
                            break;
                        }
                        let rec = rec?;
                        let view = berth_http::routes::view_of(&rec);
                        print_event(cli.json, &view, &serde_json::to_string(&view)?);
                    }
                }
                None => {
                    let client = client(cli)?;
                    let mut next = *from;
                    let mut left = limit;
                    while left > 0 {
                        let page = client
                            .journal_page(next, usize::try_from(left.min(1000)).unwrap_or(1000))
                            .await?;
                        if page.records.is_empty() {
                            break;
                        }
                        for v in &page.records {
                            print_event(cli.json, v, &serde_json::to_string(v)?);
                        }
                        left = left.saturating_sub(page.records.len() as u64);
                        next = page.next;
                    }
                }
            }
            Ok(0)
        }
        JournalCommand::Verify(RootArg { root }) => {
            let report = match root {
                Some(root) => {
                    let (j, open) = open_offline(root)?;
                    let mut report = j.verify()?;
                    if let Some(cut) = open.cut {
                        if !report.problems.iter().any(|p| p.seq == cut.at_seq) {
                            report.problems.push(berth_journal::Problem {
                                seq: cut.at_seq,
                                reason: cut.reason,
                            });
                        }
                    }
                    report
                }
                None => client(cli)?.journal_verify().await?,
            };
            if cli.json {
                json(&report)?;
            } else {
                println!(
                    "checked {} records ({}..={}) and {} checkpoints: {}",
                    report.checked,
                    report.first_seq,
                    report.last_seq,
                    report.checkpoints_checked,
                    if report.ok() {
                        "ok".to_string()
                    } else {
                        format!("{} problem(s)", report.problems.len())
                    }
                );
                for p in &report.problems {
                    println!("  seq {}: {}", p.seq, p.reason);
                }
            }
            Ok(if report.ok() { 0 } else { 3 })
        }
    }
}

fn print_stats(s: &berth_journal::JournalStats) {
    println!("path:         {}", s.path.display());
    println!(
        "records:      {} (seq {}..={})",
        s.records, s.first_seq, s.last_seq
    );
    println!(
        "checkpoints:  {}",
        if s.checkpoints.is_empty() {
            "none".to_string()
        } else {
            s.checkpoints
                .iter()
                .map(|c| format!("{} ({} bytes)", c.seq, c.bytes))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "quarantined:  {} record(s) in {} cut(s)",
        s.quarantined, s.cuts
    );
    println!("size on disk: {} bytes", s.size_on_disk);
    println!("subscribers:  {}", s.subscribers);
    if s.batches_since_open > 0 {
        println!(
            "since open:   {} records in {} durable batches ({:.1} per fsync)",
            s.appended_since_open,
            s.batches_since_open,
            s.appended_since_open as f64 / s.batches_since_open as f64
        );
    }
}
