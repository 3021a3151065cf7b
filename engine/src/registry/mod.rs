//! The registry client: pull and push over the OCI distribution API
//! (`/v2/…`), for the pull and push actors. A focused async client on `reqwest`
//! (rustls, the system roots); docs/registry.md says why not `oci-client`.
//!
//! - [`Reference`]: `host[:port]/repo/path[:tag][@sha256:…]`, validated by the
//!   distribution spec's rules; no implicit registry.
//! - [`RegistryConfig`]: insecure registries (loopback by default), mirrors, the
//!   `certs.d` CA directory, the credentials file, the default registry, limits.
//! - [`Credentials`] and [`docker_config`]: user/password (or identity token) per
//!   registry, from the request or a docker-compatible `config.json`
//!   ([`docker_config::load`] / [`docker_config::store`] for `berth login`).
//! - [`RegistryClient`]: [`resolve`](RegistryClient::resolve) a tag or digest to a
//!   verified manifest or index, [`fetch_manifest`](RegistryClient::fetch_manifest),
//!   [`fetch_blob`](RegistryClient::fetch_blob) from an offset as a [`BlobResponse`]
//!   (chunks, and whether the range was honoured), [`blob_exists`](RegistryClient::blob_exists),
//!   [`mount_blob`](RegistryClient::mount_blob), [`push_blob`](RegistryClient::push_blob)
//!   of an [`UploadBody`], [`push_manifest`](RegistryClient::push_manifest).
//!
//! Inside: `transport` (endpoints: mirrors then the registry; HTTPS / HTTP per host,
//! CA certificates, retries with back-off, HTTP status → [`EngineError`](crate::EngineError)),
//! `auth` (`WWW-Authenticate` challenges, bearer tokens cached per host, scope and
//! credentials until they expire), `blob` (download and upload bodies), `client`.
//!
//! Errors: an unreachable registry is `Unavailable` ("cannot reach registry …"), a
//! 401 after authenticating or a 403 is `Unauthenticated` ("registry … refused the
//! credentials for …" / "denied access to …"), a missing tag or manifest is
//! `NotFound { kind: "image" }`, a missing blob `NotFound { kind: "blob" }`, a schema 1
//! manifest, a digest mismatch or a malformed reference `InvalidArgument`.

mod auth;
mod blob;
mod client;
mod config;
pub mod docker_config;
mod reference;
mod transport;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use serde::{Deserialize, Serialize};

pub use blob::{BlobResponse, UploadBody};
pub use client::RegistryClient;
pub use config::{Credentials, RegistryConfig};
pub use reference::{Reference, DEFAULT_TAG};

use crate::ids::Digest;

/// Largest manifest or index fetched or pushed (4 MiB, the distribution spec's
/// recommended limit and docker-registry's).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// What a registry holds under a digest: media type, digest and size (an OCI
/// descriptor's core).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type it was served or declared as.
    pub media_type: String,
    /// Its sha256 digest, verified.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}
