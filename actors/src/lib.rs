//! berth's actors: thin shells around the engine's pure logic.
//!
//! Map of the crate:
//! - [`journal_writer`]: the journal writer thread — group commit (appends that arrive
//!   together share one fsync), sequence numbers, applying committed events to the
//!   shared [`State`], automatic checkpoints every N events.
//! - [`recovery`]: latest checkpoint + replay of the rest, before anything is served.
//! - [`supervisor`]: the [`Supervisor`] actor holding `id → Addr` of every entity actor;
//!   spawns them on demand and routes commands to them.
//! - [`namespace`]: the [`NamespaceActor`], one per namespace.
//! - [`snapshot`]: the [`snapshot::SnapshotActor`], one per snapshot (storage effects).
//! - [`import`]: the [`import::ImportActor`], one per image import.
//! - [`pull`]: the [`pull::PullActor`], one per pull from a registry (two requests for
//!   the same reference share it), and [`pull::push`] of an image to a registry.
//! - [`container`]: the [`container::ContainerActor`], one per container (lifecycle
//!   through its shim, restart policy, re-attachment after a restart).
//! - [`notice`]: notices — byte-level progress broadcast to event-stream subscribers,
//!   never journaled.
//! - [`gc`]: garbage collection (plan, then remove; leases protect work in flight).
//! - [`storage`]: the content store and snapshotter the actors share.
//! - [`messages`]: every actix message, grouped by recipient.
//! - [`runtime`]: [`start`] wires it all together and returns [`Handles`].

pub mod container;
pub mod gc;
pub mod import;
pub mod journal_writer;
pub mod messages;
pub mod namespace;
pub mod network;
pub mod notice;
pub mod pull;
pub mod recovery;
pub mod runtime;
pub mod snapshot;
pub mod storage;
pub mod supervisor;

pub use journal_writer::{Committed, SharedState, WriterConfig, WriterHandle};
pub use namespace::NamespaceActor;
pub use recovery::RecoveryReport;
pub use recovery::{open_and_recover, Recovered};
pub use runtime::{recover_opened, start, Handles, RuntimeConfig};
pub use supervisor::Supervisor;

pub use berth_engine::State;
