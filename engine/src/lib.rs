//! berth's domain: what happened (events), what is (state), and what may happen next
//! (decisions). No actors, no HTTP, no sled: everything here is testable without a
//! daemon and without root.
//!
//! Map of the crate:
//! - [`error`]: [`EngineError`] and the canonical [`ErrorKind`] (NotFound, AlreadyExists,
//!   FailedPrecondition, InvalidArgument, Unavailable, Internal), as containerd's errdefs.
//! - [`ids`]: validated identifiers ([`ids::NamespaceName`], labels); raw input is parsed
//!   into these once, at the edge.
//! - [`event`]: the [`Event`] enum (past-tense facts), each variant with a topic
//!   (`namespace.created`) and a schema version; encoding to journal payloads and
//!   decoding with upcasting from frozen old types ([`event::v1`]).
//! - [`state`]: [`State`] and the pure, infallible [`apply`]. One file per aggregate.
//! - [`mount`]: [`mount::Mount`] as data, and mounting/unmounting it.
//! - [`snapshot`]: the [`snapshot::Snapshotter`] trait (numeric ids, returns mounts),
//!   overlayfs and native implementations, and their shared conformance suite.
//! - [`content`]: the content store: blobs by sha256 digest, written through resumable,
//!   locked ingests (fsync, verify, atomic rename); small [`content::Provider`] /
//!   [`content::Ingester`] traits and the on-disk [`content::LocalStore`].
//! - [`unpack`]: the layer unpacker: one streaming pass per layer (read, decompress,
//!   hash, extract) with diff_id verification, overlay or native whiteouts, and
//!   containment of hostile entries inside the snapshot root.
//! - [`image`]: the OCI image model: [`image::parse`] of indexes and manifests (OCI and
//!   Docker schema 2; schema 1 refused), [`image::Config`], [`image::chain_ids`], and
//!   [`image::Platform`] with containerd-style matching and [`image::select`].
//! - [`registry`]: the OCI distribution client: [`registry::Reference`], pull (resolve,
//!   manifests, blobs resumed by range) and push (exists, mount, upload, manifests), with
//!   mirrors, retries, basic and bearer-token auth, per-registry CAs, insecure registries.
//! - [`gc`]: garbage collection's marking: what images, leases and containers still
//!   reference; [`gc::plan`] lists what may go.
//! - [`archive`]: image archives: [`archive::import`] of OCI image-layout and `docker save`
//!   tars (one streaming pass into the content store, then checks and naming) and
//!   [`archive::export`] of images as a deterministic OCI image-layout tar.
//! - [`container`]: a container's validated configuration, ids, restart policy, exit.
//! - [`oci`]: the OCI runtime spec (`config.json`) generated from an image config and a
//!   container configuration, with secure defaults (capabilities, seccomp, masked paths).
//! - [`runtime`]: the OCI runtime behind a trait; [`runtime::Runc`] by default.
//! - [`shim`]: berth-shim's library: control protocol, server, launch, client.
//! - [`network`]: container networking: network namespaces ([`network::netns`]) and
//!   CNI plugin invocation ([`network::cni`]: ADD/CHECK/DEL, conflists, results), with
//!   subnets and published ports ([`network::Subnet`], [`network::parse_publish`]).
//! - [`logs`]: container logs in the CRI format: writer with rotation, reader with tail,
//!   since and follow.
//! - [`decide`]: the pure [`decide`] of a [`Command`] against a [`State`], returning the
//!   events to append or the reason it is refused.

#![deny(missing_docs)]

pub mod archive;
pub mod container;
pub mod content;
pub mod decide;
pub mod error;
pub mod event;
pub mod gc;
pub mod ids;
pub mod image;
pub mod logs;
pub mod mount;
pub mod network;
pub mod oci;
pub mod registry;
pub mod runtime;
pub mod shim;
pub mod snapshot;
pub mod state;
pub mod unpack;

pub use decide::{decide, Command};
pub use error::{EngineError, ErrorKind};
pub use event::{Event, EventEnvelope};
pub use state::{apply, State};

/// Result alias of this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
