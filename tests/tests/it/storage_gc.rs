//! Garbage collection after image removal, an import cut by SIGKILL, and images in
//! namespaces.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_tests::storage::*;
use berth_tests::{create_ns, expect_api_error, TestDaemon};

fn strings<T: ToString>(v: &[T]) -> BTreeSet<String> {
    v.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_images_collects_what_only_they_used() {
    let d = TestDaemon::start();
    let c = d.client();
    let (bb_file, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let (ly_file, ly) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    import(&c, &bb_file, "").await;
    import(&c, &ly_file, "").await;
    // Both OCI archives: the busybox layer blob and its snapshot are shared.
    assert_eq!(bb.layer_digests[0], ly.layer_digests[0]);
    assert_eq!(bb.chain_ids[0], ly.chain_ids[0]);
    let full = storage_view(&d, "default").await;
    full.assert_consistent();
    assert_eq!(full.content.len(), 3 + 5, "{:?}", full.content);
    assert_eq!(full.snapshots.len(), 4);

    let df: berth_http::api::types::Df = c
        .call(hyper::Method::GET, "/v1/system/df", None::<&()>)
        .await
        .unwrap();
    assert_eq!(df.images.count, 2);
    assert_eq!(df.content.count, 8);
    assert_eq!(df.content.reclaimable, 0);
    assert_eq!(df.snapshots.count, 4);
    assert_eq!(df.snapshots.reclaimable, 0);

    let deleted = remove_image(&c, "berth.test/layers:latest", "default").await;
    assert_eq!(deleted.deleted, "berth.test/layers:latest");
    // The removal collects in the background; an explicit collection after it finds
    // whatever is left (nothing, if the background one ran first).
    gc(&c).await;
    let after = storage_view(&d, "default").await;
    after.assert_consistent();
    assert_eq!(
        after.images.keys().collect::<Vec<_>>(),
        ["berth.test/busybox:latest"]
    );
    let mut want = strings(&bb.layer_digests);
    want.insert(bb.digest.to_string());
    want.insert(bb.config_digest.to_string());
    assert_eq!(after.content.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        after.snapshots.keys().cloned().collect::<BTreeSet<_>>(),
        strings(&bb.chain_ids)
    );
    // The shared snapshot is the same one (not re-created).
    assert_eq!(
        after.snapshots[&bb.chain_ids[0].to_string()],
        full.snapshots[&bb.chain_ids[0].to_string()]
    );
    let i = inspect(&c, "berth.test/busybox:latest", "default").await;
    assert!(i.unpacked);
    let records = journal(&c).await;
    assert!(records.iter().any(|r| r.topic == "image.deleted"));
    assert!(records.iter().any(|r| r.topic == "gc.completed"));
    let removed: BTreeSet<String> = records
        .iter()
        .filter(|r| r.topic == "content.deleted")
        .map(|r| r.event["digest"].as_str().unwrap().to_string())
        .collect();
    let mut layers_only = strings(&ly.layer_digests[1..]);
    layers_only.insert(ly.digest.to_string());
    layers_only.insert(ly.config_digest.to_string());
    assert_eq!(removed, layers_only);

    remove_image(&c, "berth.test/busybox:latest", "default").await;
    gc(&c).await;
    let empty = storage_view(&d, "default").await;
    empty.assert_empty();
    // The directories themselves are still there, empty.
    let root = d.root();
    for dir in ["content/blobs/sha256", "content/ingest"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    let report = gc(&c).await;
    assert_eq!((report.content_removed, report.snapshots_removed), (0, 0));

    // Removing what is not there: 404.
    let res = c
        .call::<berth_http::api::types::Deleted>(
            hyper::Method::DELETE,
            "/v1/images/berth.test%2Fbusybox%3Alatest",
            None::<&()>,
        )
        .await;
    expect_api_error(res, 404, "NotFound");
}

/// Sends the head of an import request and the first `n` bytes of `body` by hand, so
/// the daemon is mid-import.
fn start_import(d: &TestDaemon, body: &[u8], n: usize) -> UnixStream {
    let mut s = UnixStream::connect(d.socket()).unwrap();
    write!(
        s,
        "POST /v1/images/import HTTP/1.1\r\nHost: berthd\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    for chunk in body[..n].chunks(64 * 1024) {
        s.write_all(chunk).unwrap();
    }
    s.flush().unwrap();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_an_import() {
    let mut d = TestDaemon::start();
    let c = d.client();
    let (file, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let bytes = std::fs::read(&file).unwrap();
    // Stop in the middle of the layer, the big blob.
    let layer = built.layer_digests[0].hex().to_string();
    let (pos, size) = {
        let mut archive = tar::Archive::new(&bytes[..]);
        let e = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().ends_with(&layer))
            .unwrap();
        (e.raw_file_position(), e.size())
    };
    let cut = usize::try_from(pos + size / 2).unwrap();
    let seq_before = berth_tests::last_seq(&c).await;
    let stream = tokio::task::block_in_place(|| start_import(&d, &bytes, cut));

    // Wait until the daemon has written part of the layer into an ingest.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ingest_bytes(d.root()) < size / 4 {
        assert!(
            Instant::now() < deadline,
            "the import did not get going; ingest holds {} bytes",
            ingest_bytes(d.root())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let records = journal(&c).await;
    let started = records
        .iter()
        .find(|r| r.seq > seq_before && r.topic == "image.import.started")
        .expect("the import started")
        .clone();
    let id = started.event["id"].as_str().unwrap().to_string();
    assert!(images(&c, "default").await.is_empty(), "visible mid-import");
    let last_before_kill = records.last().unwrap().seq;

    d.kill_9();
    drop(stream);
    d.restart();

    assert!(images(&c, "default").await.is_empty());
    let records = journal(&c).await;
    let after: Vec<_> = records
        .iter()
        .filter(|r| r.seq > last_before_kill)
        .collect();
    let failed = after
        .iter()
        .find(|r| r.topic == "image.import.failed")
        .unwrap_or_else(|| panic!("no image.import.failed after the restart: {after:?}"));
    assert_eq!(failed.event["id"], id.as_str());
    let reason = failed.event["reason"].as_str().unwrap();
    assert!(reason.contains("interrupted"), "{reason}");
    let lease = format!("import-{id}");
    assert!(
        after
            .iter()
            .any(|r| r.topic == "lease.deleted" && r.event["id"] == lease.as_str()),
        "the import's lease was not released: {after:?}"
    );
    assert!(!records.iter().any(|r| r.topic == "image.stored"));

    // A collection removes all the import wrote: committed blobs, the half-written
    // ingest (kept by the restart, to be resumed or aborted), everything.
    let left = storage_view(&d, "default").await;
    eprintln!("left by the killed import: {left:?}");
    assert!(!left.ingests.is_empty(), "{left:?}");
    assert!(left.snapshots.is_empty(), "{left:?}");
    let report = gc(&c).await;
    assert_eq!(
        report.content_removed,
        left.blob_files.len() as u64,
        "{report:?}"
    );
    storage_view(&d, "default").await.assert_empty();

    // And the same archive imports fine now.
    let r = import(&c, &file, "").await;
    assert_eq!(r.images[0].target.digest, built.digest.to_string());
    let i = inspect(&c, "berth.test/busybox:latest", "default").await;
    assert!(i.unpacked);
    let v = storage_view(&d, "default").await;
    v.assert_consistent();
    assert_eq!(v.content.len(), 3);
    assert_eq!(v.snapshots.len(), 1);
    // Importing mounts nothing (layers are unpacked straight into their directories).
    assert_eq!(mounts_under(d.dir()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn images_live_in_their_namespace() {
    let d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "a").await;
    let (file, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let r = import(&c, &file, "namespace=a").await;
    assert_eq!(r.images[0].name, "berth.test/busybox:latest");

    assert!(images(&c, "default").await.is_empty());
    assert!(snapshots(&c, "default").await.is_empty());
    assert_eq!(images(&c, "a").await.len(), 1);
    let i = inspect(&c, "berth.test/busybox:latest", "a").await;
    assert!(i.unpacked);
    assert_eq!(
        i.chain_ids,
        built
            .chain_ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let snaps = snapshots(&c, "a").await;
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].key, built.chain_ids[0].to_string());
    let res = c
        .call::<berth_http::api::types::ImageInspect>(
            hyper::Method::GET,
            "/v1/images/berth.test%2Fbusybox%3Alatest",
            None::<&()>,
        )
        .await;
    expect_api_error(res, 404, "NotFound");
    let res = c
        .call::<berth_http::api::types::ImageList>(
            hyper::Method::GET,
            "/v1/images?namespace=missing",
            None::<&()>,
        )
        .await;
    // Listing a namespace that does not exist lists nothing or says so; never 5xx.
    match res {
        Ok(list) => assert!(list.images.is_empty()),
        Err(e) => {
            expect_api_error::<()>(Err(e), 404, "NotFound");
        }
    }

    // The same archive into default: the blobs are shared, the snapshots are not.
    import(&c, &file, "").await;
    assert_eq!(snapshots(&c, "default").await.len(), 1);
    assert_eq!(content(&c).await.len(), 3);
    remove_image(&c, "berth.test/busybox:latest", "default").await;
    gc(&c).await;
    assert!(snapshots(&c, "default").await.is_empty());
    assert_eq!(snapshots(&c, "a").await.len(), 1);
    assert_eq!(content(&c).await.len(), 3, "blobs still used in a");

    // A namespace holding images cannot be deleted.
    let msg = expect_api_error(c.delete_namespace("a").await, 409, "FailedPrecondition");
    assert!(msg.contains("images"), "{msg}");
    remove_image(&c, "berth.test/busybox:latest", "a").await;
    gc(&c).await;
    c.delete_namespace("a")
        .await
        .unwrap_or_else(|e| panic!("deleting the emptied namespace: {e}"));
    let v = storage_view(&d, "default").await;
    v.assert_empty();
    // Nothing is left in a either (it is gone; its listing is empty or 404).
    let res = c
        .call::<berth_http::api::types::SnapshotList>(
            hyper::Method::GET,
            "/v1/snapshots?namespace=a",
            None::<&()>,
        )
        .await;
    if let Ok(list) = res {
        assert!(list.snapshots.is_empty());
    }
}
