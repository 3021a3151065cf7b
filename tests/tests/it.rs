//! berth's end-to-end tests: one binary, one module per area, every test on its own
//! real `berthd` (see `berth_tests::TestDaemon`). Build the binaries first:
//! `cargo build --workspace --bins`.

#[path = "it/bad_input.rs"]
mod bad_input;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/containers.rs"]
mod containers;
#[path = "it/containers_bad_input.rs"]
mod containers_bad_input;
#[path = "it/containers_restart.rs"]
mod containers_restart;
#[path = "it/events.rs"]
mod events;
#[path = "it/image_errors.rs"]
mod image_errors;
#[path = "it/images.rs"]
mod images;
#[path = "it/lock.rs"]
mod lock;
#[path = "it/namespaces.rs"]
mod namespaces;
#[path = "it/networks.rs"]
mod networks;
#[path = "it/networks_api.rs"]
mod networks_api;
#[path = "it/pull.rs"]
mod pull;
#[path = "it/restart.rs"]
mod restart;
#[path = "it/storage_cli.rs"]
mod storage_cli;
#[path = "it/storage_gc.rs"]
mod storage_gc;
#[path = "it/tcp.rs"]
mod tcp;
