//! `berth-bench`: benchmarks of berth's journal, event stream, unpacker and containers.
//!
//! - `append`: durable append throughput, one fsync per event versus the group-commit
//!   writer at 1, 8 and 64 concurrent writers.
//! - `replay`: recovery time (journal open + replay) of 100k and 1M events, from empty,
//!   from a checkpoint at the tip and from a checkpoint 1000 events behind it; each
//!   measurement runs in a fresh child process.
//! - `fanout`: the real API in-process; N events written through the writer, fanned out
//!   over SSE to S subscribers; counts what each received.
//! - `unpack`: layer unpack time of a multi-layer gzip and zstd image, berth's
//!   `apply_layer` against `tar -x` of the same layers, side by side.
//! - `containers`: `berth run --rm busybox true` against `runc run` of an equivalent
//!   bundle, side by side; then N detached containers: start time, memory per shim,
//!   berthd's memory, `rm -f` time (real berthd, berth, berth-shim and runc; root only).
//! - `pull`: cold pull (download + verify + unpack, empty store) of a ≥ 150 MB multi-layer
//!   image from a loopback `docker-registry`, `berth pull` against containerd's
//!   `ctr images pull --plain-http`, side by side; peak RSS of each daemon.
//!
//! Every benchmark works in its own temporary directory, prints human-readable results,
//! then one final JSON line with the same figures.

mod append;
mod common;
mod containers;
mod fanout;
mod pull;
mod replay;
mod sys;
mod unpack;

use clap::{Parser, Subcommand};

/// berth benchmarks.
#[derive(Debug, Parser)]
#[command(name = "berth-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Durable append throughput: one fsync per event vs group commit at 1, 8, 64 writers.
    Append(append::Args),
    /// Recovery time of N events: from empty, from a checkpoint at the tip, and from a
    /// checkpoint 1000 events behind the tip.
    Replay(replay::Args),
    /// SSE fan-out of N events to S subscribers through the real API.
    Fanout(fanout::Args),
    /// Unpack time of a multi-layer gzip and zstd image: berth's apply_layer vs tar -x.
    Unpack(unpack::Args),
    /// Container start-to-exit latency against runc, and N running containers: time,
    /// memory per shim, berthd's memory (root only; needs the release binaries).
    Containers(containers::Args),
    /// Cold pull (download + unpack) of a large image from a loopback registry: berth vs
    /// containerd's `ctr images pull` (root only; needs the release binaries).
    Pull(pull::Args),
    /// (internal) One recovery measurement, run by `replay` in a fresh process.
    #[command(hide = true)]
    ReplayChild(replay::ChildArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Append(a) => append::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Fanout(a) => fanout::run(a),
        Command::Unpack(a) => unpack::run(a),
        Command::Containers(a) => containers::run(a),
        Command::Pull(a) => pull::run(a),
        Command::ReplayChild(a) => replay::child(a),
    }
}
