//! The image configuration (OCI or Docker): run defaults and the layers' diff ids.

use oci_spec::image::ImageConfiguration;

use super::chain::chain_ids;
use super::{Manifest, Platform};
use crate::ids::{Digest, Labels};
use crate::{EngineError, Result};

/// A parsed and validated image configuration. Its diff ids are known to be sha256
/// digests and its `rootfs.type` to be `layers`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    inner: ImageConfiguration,
    diff_ids: Vec<Digest>,
    exposed_ports: Vec<String>,
}

impl Config {
    /// Parses a configuration blob (`application/vnd.oci.image.config.v1+json` or
    /// `application/vnd.docker.container.image.v1+json`; both have the same shape).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let inner: ImageConfiguration = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::InvalidArgument(format!("image config is not valid: {e}")))?;
        let rootfs = inner.rootfs();
        if rootfs.typ() != "layers" {
            return Err(EngineError::InvalidArgument(format!(
                "image config rootfs.type is {:?}; only \"layers\" is supported",
                rootfs.typ()
            )));
        }
        let diff_ids = rootfs
            .diff_ids()
            .iter()
            .map(|d| {
                Digest::parse(d)
                    .map_err(|e| EngineError::InvalidArgument(format!("image config diff id: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if inner.os().to_string().is_empty() || inner.architecture().to_string().is_empty() {
            return Err(EngineError::InvalidArgument(
                "image config must state os and architecture".into(),
            ));
        }
        let mut exposed_ports = inner
            .config()
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        exposed_ports.sort();
        Ok(Config {
            inner,
            diff_ids,
            exposed_ports,
        })
    }

    /// The layers' diff ids (digests of the uncompressed tars), bottom first.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.diff_ids
    }

    /// The chain ids of the layer stack, bottom first (see [`super::chain_ids`]).
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.diff_ids)
    }

    /// Checks that this config belongs to `manifest`: one diff id per layer.
    pub fn check_manifest(&self, manifest: &Manifest) -> Result<()> {
        let layers = manifest.layers().len();
        if self.diff_ids.len() != layers {
            return Err(EngineError::InvalidArgument(format!(
                "image config lists {} diff ids but manifest has {layers} layers",
                self.diff_ids.len()
            )));
        }
        Ok(())
    }

    /// The platform the image is built for.
    pub fn platform(&self) -> Platform {
        let mut p = Platform::new(
            &self.inner.os().to_string(),
            &self.inner.architecture().to_string(),
            self.inner.variant().as_deref(),
        );
        p.os_version = self.inner.os_version().clone();
        p.os_features = self.inner.os_features().clone().unwrap_or_default();
        p
    }

    fn run(&self) -> Option<&oci_spec::image::Config> {
        self.inner.config().as_ref()
    }

    /// `Entrypoint` (empty if unset).
    pub fn entrypoint(&self) -> &[String] {
        self.run()
            .and_then(|c| c.entrypoint().as_deref())
            .unwrap_or(&[])
    }

    /// `Cmd` (empty if unset).
    pub fn cmd(&self) -> &[String] {
        self.run().and_then(|c| c.cmd().as_deref()).unwrap_or(&[])
    }

    /// `Env` as `KEY=value` strings, in image order (empty if unset).
    pub fn env(&self) -> &[String] {
        self.run().and_then(|c| c.env().as_deref()).unwrap_or(&[])
    }

    /// `WorkingDir`, if set and not empty.
    pub fn working_dir(&self) -> Option<&str> {
        self.run()
            .and_then(|c| c.working_dir().as_deref())
            .filter(|s| !s.is_empty())
    }

    /// `User` (`user`, `uid`, `user:group`, …), if set and not empty.
    pub fn user(&self) -> Option<&str> {
        self.run()
            .and_then(|c| c.user().as_deref())
            .filter(|s| !s.is_empty())
    }

    /// `StopSignal`, if set.
    pub fn stop_signal(&self) -> Option<&str> {
        self.run().and_then(|c| c.stop_signal().as_deref())
    }

    /// `Labels`, ordered by key.
    pub fn labels(&self) -> Labels {
        self.run()
            .and_then(|c| c.labels().as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `ExposedPorts` keys (`80/tcp`, `53/udp`), sorted.
    pub fn exposed_ports(&self) -> &[String] {
        &self.exposed_ports
    }

    /// `created`, as the image states it (RFC 3339), if set.
    pub fn created(&self) -> Option<&str> {
        self.inner.created().as_deref()
    }

    /// The configuration as oci-spec models it.
    pub fn oci(&self) -> &ImageConfiguration {
        &self.inner
    }
}
