//! Unpacking an image's layers into committed snapshots named by chain id.

use actix::Addr;
use berth_engine::content::Provider;
use berth_engine::event::{LeaseResource, Target};
use berth_engine::ids::{Digest, NamespaceName};
use berth_engine::image::{self, BlobRef, Config, Parsed, Platform};
use berth_engine::snapshot::Kind;
use berth_engine::unpack::{apply_layer, sync_root, ApplyOptions, Compression};
use berth_engine::{decide, Command, EngineError, ErrorKind};

use crate::messages::{CommitSnapshot, PrepareSnapshot, RemoveSnapshot};
use crate::storage::{blocking, Stores};
use crate::supervisor::Supervisor;
use crate::WriterHandle;

fn mailbox(_: actix::MailboxError) -> EngineError {
    EngineError::Unavailable("the supervisor is not running".into())
}

fn read_blob(stores: &Stores, digest: &Digest) -> Result<Vec<u8>, EngineError> {
    stores.read_document(digest).map_err(|e| match e.kind() {
        ErrorKind::NotFound => EngineError::InvalidArgument(format!("blob {digest} is missing")),
        _ => e,
    })
}

/// The manifest (with its digest) and config for `platform` under `target`
/// (following an index).
pub fn resolve(
    stores: &Stores,
    target: &Target,
    platform: &Platform,
) -> Result<(Digest, image::Manifest, Config), EngineError> {
    let mut media_type = target.media_type.clone();
    let mut digest = target.digest.clone();
    for _ in 0..4 {
        let bytes = read_blob(stores, &digest)?;
        match image::parse(Some(&media_type), &bytes)? {
            Parsed::Index(index) => {
                let d = index.select(platform)?;
                digest = image::descriptor_digest(d)?;
                media_type = d.media_type().to_string();
            }
            Parsed::Manifest(m) => {
                let config = Config::parse(&read_blob(stores, &m.config().digest)?)?;
                config.check_manifest(&m)?;
                return Ok((digest, m, config));
            }
        }
    }
    Err(EngineError::InvalidArgument(format!(
        "image {} nests indexes too deeply",
        target.digest
    )))
}

/// Unpacks every layer of the image at `target` (for `platform`) that is not already
/// a committed snapshot of `ns`, each into an active snapshot leased by `lease`,
/// verified against the config's diff_id and committed under its chain id.
#[allow(clippy::too_many_arguments)]
pub async fn unpack_image(
    writer: &WriterHandle,
    stores: &Stores,
    supervisor: &Addr<Supervisor>,
    ns: &NamespaceName,
    lease: &str,
    work_id: &str,
    target: &Target,
    platform: &Platform,
) -> Result<(), EngineError> {
    let (st, t, p) = (stores.clone(), target.clone(), platform.clone());
    let (_, manifest, config) = blocking(move || resolve(&st, &t, &p)).await?;
    let chain = config.chain_ids();
    let diff_ids = config.diff_ids();
    let mut parent: Option<String> = None;
    for (i, layer) in manifest.layers().iter().enumerate() {
        let chain_id = chain[i].to_string();
        stores
            .unpack_layer(
                writer,
                supervisor,
                ns,
                lease,
                &format!("extract-{work_id}-{i}"),
                &chain_id,
                parent.as_deref(),
                layer,
                &diff_ids[i],
            )
            .await?;
        parent = Some(chain_id);
    }
    Ok(())
}

// `unpack_layer` is a method of `Stores` so that the pull (which unpacks each layer
// as soon as it is downloaded) reaches it without widening this private module.
impl Stores {
    /// Unpacks one layer (its blob in the content store, `layer` of the manifest) into
    /// the committed snapshot `chain_id` of `ns` on top of `parent` (the previous
    /// layer's chain id, committed already; `None` for the bottom layer): nothing when
    /// that snapshot is committed already; otherwise through the active snapshot `key`,
    /// put under `lease` before it is prepared, checked against `diff_id` and removed
    /// again when applying fails. Another unpack committing the same chain id first is
    /// fine: its snapshot is used.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn unpack_layer(
        &self,
        writer: &WriterHandle,
        supervisor: &Addr<Supervisor>,
        ns: &NamespaceName,
        lease: &str,
        key: &str,
        chain_id: &str,
        parent: Option<&str>,
        layer: &BlobRef,
        diff_id: &Digest,
    ) -> Result<(), EngineError> {
        let have = writer
            .state()
            .read()
            .storage
            .snapshot(ns, chain_id)
            .is_some_and(|s| s.kind == Kind::Committed);
        if have {
            return Ok(());
        }
        let key = key.to_string();
        let events = decide(
            &writer.state().read(),
            Command::AddLeaseResource {
                namespace: ns.clone(),
                id: lease.to_string(),
                resource: LeaseResource::Snapshot(key.clone()),
            },
        )?;
        writer.append(events).await?;
        let prepared = supervisor
            .send(PrepareSnapshot {
                namespace: ns.clone(),
                key: key.clone(),
                parent: parent.map(str::to_string),
                kind: Kind::Active,
                labels: Default::default(),
            })
            .await
            .map_err(mailbox)??;
        let (dir, mode) = self.snapshotter.layer_dir(prepared.snapshot.id);
        let st = self.clone();
        let layer_digest = layer.digest.clone();
        let media_type = layer.media_type.clone();
        let diff_id = diff_id.clone();
        let applied = blocking(move || {
            let compression = Compression::from_media_type(&media_type)?;
            let blob = st.content.open(&layer_digest)?;
            let applied = apply_layer(
                std::io::BufReader::with_capacity(1 << 20, blob.into_file()),
                compression,
                &dir,
                mode,
                &ApplyOptions {
                    expected_diff_id: Some(&diff_id),
                    hash_compressed: false,
                },
            )?;
            sync_root(&dir)?;
            Ok(applied)
        })
        .await;
        if let Err(e) = applied {
            let _ = supervisor
                .send(RemoveSnapshot {
                    namespace: ns.clone(),
                    key: key.clone(),
                })
                .await;
            return Err(match e.kind() {
                // a layer that does not match its config, or a hostile one, is bad input
                ErrorKind::FailedPrecondition => EngineError::InvalidArgument(e.to_string()),
                _ => e,
            });
        }
        match supervisor
            .send(CommitSnapshot {
                namespace: ns.clone(),
                key: key.clone(),
                name: chain_id.to_string(),
            })
            .await
            .map_err(mailbox)?
        {
            Ok(_) => {}
            Err(e) => {
                // Another unpack of the same layer committed first: use its snapshot.
                let _ = supervisor
                    .send(RemoveSnapshot {
                        namespace: ns.clone(),
                        key: key.clone(),
                    })
                    .await;
                if e.kind() != ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
