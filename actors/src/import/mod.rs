//! The import actor: one per image import. It streams an OCI or docker archive into the
//! content store under an ephemeral lease, unpacks the image's layers into snapshots
//! (through the supervisor and the snapshot actors), and only then names the images:
//! an interrupted or failed import never leaves a half-visible image, and what it
//! wrote is collected by the next garbage collection.

mod actor;
mod handlers;
mod unpack;

use actix::Addr;
use berth_engine::ids::{ImageName, NamespaceName};
use berth_engine::image::Platform;

use crate::storage::Stores;
use crate::supervisor::Supervisor;
use crate::WriterHandle;

pub use unpack::{resolve, unpack_image};

/// One import's actor.
pub struct ImportActor {
    pub(crate) id: String,
    pub(crate) namespace: NamespaceName,
    pub(crate) name: Option<ImageName>,
    pub(crate) platform: Platform,
    pub(crate) writer: WriterHandle,
    pub(crate) stores: Stores,
    pub(crate) supervisor: Addr<Supervisor>,
}

impl ImportActor {
    /// An import of an archive into `namespace`, unpacking for `platform`.
    pub fn new(
        namespace: NamespaceName,
        name: Option<ImageName>,
        platform: Platform,
        writer: WriterHandle,
        stores: Stores,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        let id = format!(
            "{}-{:08x}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            rand_u32()
        );
        ImportActor {
            id,
            namespace,
            name,
            platform,
            writer,
            stores,
            supervisor,
        }
    }
}

/// A little randomness for ids without a dependency: the clock's nanoseconds mixed
/// with a process-wide counter.
fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = chrono::Utc::now().timestamp_subsec_nanos();
    n.rotate_left(13) ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed) ^ std::process::id()
}
