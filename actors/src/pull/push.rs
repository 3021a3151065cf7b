//! Push: an image of the content store to a registry. Each blob is checked with a
//! `HEAD` first; a blob missing from the target repository is mounted from the image's
//! own repository when that is on the same registry, else uploaded; then the
//! manifest(s) go up by digest and the top document under the target's tag.

use berth_engine::content::Provider;
use berth_engine::ids::{Digest, ImageName, NamespaceName};
use berth_engine::image::{self, Parsed};
use berth_engine::registry::{Credentials, Reference, RegistryClient, UploadBody};
use berth_engine::{EngineError, ErrorKind};

use crate::storage::{blocking, Stores};
use crate::WriterHandle;

/// What a push did.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// Where it went.
    pub target: Reference,
    /// The digest of the top document (manifest or index) pushed.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: u64,
    /// Blobs mounted from another repository of the registry.
    pub mounted: u64,
    /// Blobs the registry had already.
    pub existing: u64,
}

async fn read(stores: &Stores, digest: &Digest) -> Result<Vec<u8>, EngineError> {
    let (st, d) = (stores.clone(), digest.clone());
    blocking(move || st.read_document(&d)).await
}

/// Pushes image `name` of `ns` to `target` (its tag, or its digest).
pub async fn push_image(
    writer: &WriterHandle,
    stores: &Stores,
    registry: &RegistryClient,
    ns: &NamespaceName,
    name: &ImageName,
    target: &Reference,
    creds: Option<&Credentials>,
) -> Result<Pushed, EngineError> {
    let image = writer
        .state()
        .read()
        .storage
        .image(ns, name)
        .cloned()
        .ok_or_else(|| EngineError::NotFound {
            kind: "image",
            id: name.to_string(),
        })?;
    let source = Reference::parse(name.as_str())
        .ok()
        .filter(|s| s.registry() == target.registry() && s.repository() != target.repository());
    let mut pushed = Pushed {
        target: target.clone(),
        digest: image.target.digest.clone(),
        uploaded: 0,
        mounted: 0,
        existing: 0,
    };
    let top = read(stores, &image.target.digest).await?;
    let manifests: Vec<(String, Digest, Vec<u8>)> =
        match image::parse(Some(&image.target.media_type), &top)? {
            Parsed::Manifest(_) => Vec::new(),
            Parsed::Index(index) => {
                let mut out = Vec::new();
                for d in index.manifests() {
                    let digest = image::descriptor_digest(d)?;
                    let bytes = read(stores, &digest).await.map_err(|e| match e.kind() {
                        ErrorKind::NotFound => EngineError::FailedPrecondition(format!(
                            "image {name} lacks manifest {digest} of its index (it was pulled \
                             or imported for one platform only): push a single-platform \
                             image, e.g. by its manifest digest"
                        )),
                        _ => e,
                    })?;
                    out.push((d.media_type().to_string(), digest, bytes));
                }
                out
            }
        };
    let docs: Vec<(String, Vec<u8>)> = if manifests.is_empty() {
        vec![(image.target.media_type.clone(), top.clone())]
    } else {
        manifests
            .iter()
            .map(|(m, _, b)| (m.clone(), b.clone()))
            .collect()
    };
    for (media_type, bytes) in &docs {
        let Parsed::Manifest(m) = image::parse(Some(media_type), bytes)? else {
            return Err(EngineError::InvalidArgument(format!(
                "image {name} nests an index in its index; berth pushes one level only"
            )));
        };
        let blobs = std::iter::once(m.config().clone()).chain(m.layers().iter().cloned());
        for b in blobs {
            if registry.blob_exists(target, &b.digest, creds).await? {
                pushed.existing += 1;
                continue;
            }
            if let Some(src) = &source {
                if registry
                    .mount_blob(target, &b.digest, src.repository(), creds)
                    .await
                    .unwrap_or(false)
                {
                    pushed.mounted += 1;
                    continue;
                }
            }
            let (st, d) = (stores.clone(), b.digest.clone());
            let file = blocking(move || Ok(st.content.open(&d)?.into_file())).await?;
            registry
                .push_blob(
                    target,
                    &b.digest,
                    b.size,
                    UploadBody::from_reader(tokio::fs::File::from_std(file)),
                    creds,
                )
                .await?;
            pushed.uploaded += 1;
        }
    }
    for (media_type, digest, bytes) in &manifests {
        registry
            .push_manifest(
                &target.with_digest(digest.clone()),
                media_type,
                bytes.clone().into(),
                creds,
            )
            .await?;
    }
    pushed.digest = registry
        .push_manifest(target, &image.target.media_type, top.into(), creds)
        .await?;
    Ok(pushed)
}
