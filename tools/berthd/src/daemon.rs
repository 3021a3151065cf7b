//! Start-up and shut-down of the daemon: lock the root, open and recover the journal,
//! bind the sockets, serve until SIGTERM/SIGINT, then flush and exit.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_actors::RuntimeConfig;
use berth_http::{ApiConfig, Listeners};
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Holds `<root>/berthd.lock` for the life of the daemon.
fn lock_root(root: &Path) -> anyhow::Result<Flock<File>> {
    let path = root.join("berthd.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            lock.rewind()?;
            writeln!(lock, "{}", std::process::id())?;
            lock.sync_all()?;
            Ok(lock)
        }
        Err((mut file, errno)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            if errno == nix::errno::Errno::EWOULDBLOCK {
                bail!(
                    "another berthd{} is already running on root {} (lock {} is held)",
                    if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                    root.display(),
                    path.display()
                );
            }
            bail!("cannot lock {}: {errno}", path.display());
        }
    }
}

fn make_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn bind_socket(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // We hold the root lock, so a socket file left here is stale.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing stale socket {}", path.display()))
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn terminated() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGINT");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// Runs the daemon to completion.
pub fn run(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    make_dir(&config.root, 0o711)?;
    make_dir(&config.state, 0o711)?;
    let _lock = lock_root(&config.root)?;
    let system = actix::System::new();
    system.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let journal_dir = config.root.join("journal");
    // One pass: verify the journal and replay it into the state together.
    let recovered = berth_actors::open_and_recover(
        &journal_dir,
        berth_journal::OpenOptions {
            cache_bytes: config.cache_bytes,
            subscriber_buffer: config.subscriber_buffer,
            repair: true,
        },
    )
    .with_context(|| {
        format!(
            "opening and replaying the journal in {}",
            journal_dir.display()
        )
    })?;
    let journal = recovered.journal.clone();
    if let Some(cut) = &recovered.report.open.cut {
        tracing::error!(
            at_seq = cut.at_seq,
            reason = %cut.reason,
            quarantined = cut.quarantined,
            "the journal had a bad record: it was cut there and the rest quarantined"
        );
    }
    let stores = berth_actors::storage::Stores::open(&config.root, config.snapshotter)
        .context("opening the content store and snapshotter")?;
    tracing::info!(snapshotter = stores.snapshotter.name(), "storage ready");
    let handles = berth_actors::start(
        recovered,
        RuntimeConfig {
            checkpoint_every: config.checkpoint_every,
            max_batch: config.max_batch,
            registry: config.registry.clone(),
            on_fatal: Box::new(|e| {
                tracing::error!(error = %e, "the journal failed; exiting so that a restart replays what is durable");
                std::process::exit(70);
            }),
        },
        stores,
        config.containers.clone(),
    )
    .await
    .context("starting from the recovered state")?;
    let unix = bind_socket(&config.socket)?;
    let tcp = match &config.tcp {
        Some(addr) => {
            let l =
                std::net::TcpListener::bind(addr).with_context(|| format!("binding TCP {addr}"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    tracing::info!(
        socket = %config.socket.display(),
        tcp = config.tcp.as_deref().unwrap_or("-"),
        root = %config.root.display(),
        seq = journal.last_seq(),
        "berthd ready"
    );
    berth_http::run(
        Listeners {
            unix: Some(unix),
            tcp,
        },
        handles,
        ApiConfig {
            token: config.token.clone(),
            keepalive: Duration::from_secs(config.keepalive_secs),
            workers: config.workers,
        },
        terminated(),
    )
    .await
    .context("serving the API")?;
    journal.close().context("flushing the journal")?;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!(seq = journal.last_seq(), "berthd stopped cleanly");
    Ok(())
}
