//! berth's end-to-end tests: one binary, one module per area, every test on its own
//! real `berthd` (see `berth_tests::TestDaemon`). Build the binaries first:
//! `cargo build --workspace --bins`.

#[path = "it/bad_input.rs"]
mod bad_input;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/events.rs"]
mod events;
#[path = "it/lock.rs"]
mod lock;
#[path = "it/namespaces.rs"]
mod namespaces;
#[path = "it/restart.rs"]
mod restart;
#[path = "it/tcp.rs"]
mod tcp;
