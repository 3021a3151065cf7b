//! Image import, unpack, export and re-import against real daemons, with the
//! deterministic images of `berth-mkimage` (and third-party tools when installed).

use std::collections::BTreeSet;
use std::path::Path;

use berth_engine::image::media;
use berth_engine::mount::mount_all;
use berth_engine::snapshot::{Kind, Overlay, Snapshotter};
use berth_mkimage::contents::check_layers_view;
use berth_tests::storage::*;
use berth_tests::TestDaemon;

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// The storage ids of `chain` (bottom first) in a snapshot listing.
fn chain_ids_to_storage(
    list: &[berth_http::api::types::SnapshotView],
    chain: &[String],
) -> Vec<u64> {
    chain.iter().map(|k| snapshot_id(list, k)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn import_oci_and_docker_archives() {
    let d = TestDaemon::start();
    let c = d.client();
    let (bb_file, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let (ly_file, ly) = build_image(d.dir(), ImageKind::Layers, Format::DockerArchive, None);

    let r = import(&c, &bb_file, "").await;
    assert_eq!(r.images.len(), 1, "{r:?}");
    assert_eq!(r.images[0].name, "berth.test/busybox:latest");
    assert_eq!(r.images[0].target.digest, bb.digest.to_string());
    assert_eq!(r.images[0].target.media_type, media::OCI_MANIFEST);
    let r2 = import(&c, &ly_file, "").await;
    assert_eq!(r2.images.len(), 1, "{r2:?}");
    assert_eq!(r2.images[0].name, "berth.test/layers:latest");
    assert_eq!(r2.images[0].target.media_type, media::OCI_MANIFEST);
    // A docker archive holds no manifest: the daemon synthesizes one over the same
    // config and the (uncompressed) layers.
    let layers_target = r2.images[0].target.digest.clone();
    assert!(r2.seq > r.seq);

    let list = images(&c, "default").await;
    let listed: Vec<(&str, &str)> = list
        .iter()
        .map(|i| (i.name.as_str(), i.target.digest.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("berth.test/busybox:latest", bb.digest.to_string().as_str()),
            ("berth.test/layers:latest", layers_target.as_str()),
        ]
    );
    assert_eq!(list[0], r.images[0]);
    assert_eq!(list[1], r2.images[0]);

    let host = berth_engine::image::Platform::host().to_string();
    let i = inspect(&c, "berth.test/busybox:latest", "default").await;
    assert!(i.unpacked, "{i:?}");
    assert_eq!(i.image, r.images[0]);
    assert_eq!(i.manifest, bb.manifest_digest.to_string());
    assert_eq!(i.config, bb.config_digest.to_string());
    assert_eq!(i.platform, host);
    assert_eq!(i.platform, bb.manifests[0].platform);
    assert_eq!(i.layers, strings(&bb.layer_digests));
    assert_eq!(i.diff_ids, strings(&bb.diff_ids));
    assert_eq!(i.chain_ids, strings(&bb.chain_ids));
    assert_eq!(i.config_json["config"]["Cmd"], serde_json::json!(["sh"]));
    // Inspect by the short form (`:latest` implied) finds the same image.
    let short = inspect(&c, "berth.test/busybox", "default").await;
    assert_eq!(short, i);

    let l = inspect(&c, "berth.test/layers:latest", "default").await;
    assert!(l.unpacked, "{l:?}");
    assert_eq!(l.manifest, layers_target);
    assert_eq!(l.config, ly.config_digest.to_string());
    assert_eq!(l.diff_ids, strings(&ly.diff_ids));
    assert_eq!(l.chain_ids, strings(&ly.chain_ids));
    assert_eq!(
        l.layers,
        strings(&ly.diff_ids),
        "docker layers are plain tars"
    );
    assert_eq!(l.config_json["config"]["WorkingDir"], "/data");
    assert_eq!(
        l.config_json["config"]["Labels"]["berth.test.image"],
        "layers"
    );
    assert_eq!(l.platform, host);

    // Snapshots: one committed snapshot per chain id, parents chained; the busybox
    // layer is shared (same diff id), so 4 in all.
    assert_eq!(bb.chain_ids[0], ly.chain_ids[0]);
    let snaps = snapshots(&c, "default").await;
    assert_eq!(snaps.len(), 4, "{snaps:?}");
    for s in &snaps {
        assert_eq!(s.kind, "committed", "{s:?}");
        assert_eq!(s.snapshotter, auto_snapshotter(), "{s:?}");
        assert!(s.size > 0 && s.inodes > 0, "{s:?}");
    }
    for (n, chain) in ly.chain_ids.iter().enumerate() {
        let s = snaps
            .iter()
            .find(|s| s.key == chain.to_string())
            .unwrap_or_else(|| panic!("no snapshot {chain}: {snaps:?}"));
        let want_parent = n.checked_sub(1).map(|p| ly.chain_ids[p].to_string());
        assert_eq!(s.parent, want_parent, "{s:?}");
    }

    // Content: every blob of both images, nothing else.
    let mut want: BTreeSet<String> = BTreeSet::new();
    want.insert(bb.digest.to_string());
    want.insert(bb.config_digest.to_string());
    want.extend(strings(&bb.layer_digests));
    want.insert(layers_target.clone());
    want.insert(ly.config_digest.to_string());
    want.extend(strings(&ly.diff_ids));
    let blobs = content(&c).await;
    let got: BTreeSet<String> = blobs.iter().map(|b| b.digest.clone()).collect();
    assert_eq!(got, want);
    let layer_size = bb.manifests[0].layers[0].size;
    assert!(blobs
        .iter()
        .any(|b| b.digest == bb.layer_digests[0].to_string() && b.size == layer_size));
    assert_eq!(
        i.size,
        bb.manifests[0].size
            + blobs
                .iter()
                .filter(|b| b.digest == bb.config_digest.to_string())
                .map(|b| b.size)
                .sum::<u64>()
            + layer_size
    );

    // The journal tells the story: two imports started and completed, their leases
    // gone.
    let records = journal(&c).await;
    let count = |topic: &str| records.iter().filter(|r| r.topic == topic).count();
    assert_eq!(count("image.import.started"), 2);
    assert_eq!(count("image.import.completed"), 2);
    assert_eq!(count("image.import.failed"), 0);
    assert_eq!(count("lease.created"), 2);
    assert_eq!(count("lease.deleted"), 2);
    assert_eq!(count("image.stored"), 2);

    // Everything is referenced: a collection removes nothing, the disk matches.
    let before = storage_view(&d, "default").await;
    before.assert_consistent();
    let report = gc(&c).await;
    assert_eq!((report.content_removed, report.snapshots_removed), (0, 0));
    assert_eq!(storage_view(&d, "default").await, before);
}

/// The snapshotter `auto` picks: overlayfs when the kernel has it.
fn auto_snapshotter() -> String {
    if berth_engine::mount::overlay_supported() {
        "overlayfs".into()
    } else {
        "native".into()
    }
}

/// With the native snapshotter the top snapshot's directory is the whole unpacked
/// filesystem.
#[tokio::test(flavor = "multi_thread")]
async fn unpacked_layers_are_correct_native() {
    let d = TestDaemon::builder()
        .arg("--snapshotter")
        .arg("native")
        .start();
    let c = d.client();
    let (file, built) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    import(&c, &file, "").await;
    let i = inspect(&c, "berth.test/layers:latest", "default").await;
    assert!(i.unpacked);
    assert_eq!(i.chain_ids, strings(&built.chain_ids));
    let snaps = snapshots(&c, "default").await;
    assert!(snaps.iter().all(|s| s.snapshotter == "native"), "{snaps:?}");
    let top = snapshot_id(&snaps, i.chain_ids.last().unwrap());
    let dir = d
        .root()
        .join("snapshots/native/snapshots")
        .join(top.to_string());
    check_layers_view(&dir, true).unwrap_or_else(|e| panic!("{e:#}"));
    storage_view(&d, "default").await.assert_consistent();
}

/// With overlayfs, a read-only overlay of the committed chain is the unpacked image.
#[tokio::test(flavor = "multi_thread")]
async fn unpacked_layers_are_correct_overlayfs() {
    if !berth_engine::mount::overlay_supported() {
        eprintln!("skipping: the kernel has no overlayfs");
        return;
    }
    let d = TestDaemon::builder()
        .arg("--snapshotter")
        .arg("overlayfs")
        .start();
    let c = d.client();
    let (file, built) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    import(&c, &file, "").await;
    let i = inspect(&c, "berth.test/layers:latest", "default").await;
    assert!(i.unpacked);
    assert_eq!(i.chain_ids, strings(&built.chain_ids));
    let snaps = snapshots(&c, "default").await;
    assert!(
        snaps.iter().all(|s| s.snapshotter == "overlayfs"),
        "{snaps:?}"
    );
    let mut ids = chain_ids_to_storage(&snaps, &i.chain_ids);
    let top = ids.pop().unwrap();
    ids.reverse(); // parents nearest first

    // Each layer's own directory holds only that layer (whiteouts as overlay wants).
    let root = d.root().join("snapshots/overlayfs");
    let bottom = root
        .join("snapshots")
        .join(ids.last().unwrap().to_string())
        .join("fs");
    assert!(bottom.join("bin/busybox").is_file());
    assert!(!bottom.join("data").exists());

    let overlay = Overlay::new(&root).unwrap();
    let mounts = overlay.mounts(top, Kind::Committed, &ids).unwrap();
    let target = d.dir().join("view");
    std::fs::create_dir(&target).unwrap();
    {
        mount_all(&mounts, &target).unwrap_or_else(|e| panic!("mounting {mounts:?}: {e}"));
        let _guard = MountGuard(target.clone());
        assert_eq!(mounts_under(&target), [target.display().to_string()]);
        check_layers_view(&target, true).unwrap_or_else(|e| panic!("{e:#}"));
    }
    assert_eq!(mounts_under(d.dir()), Vec::<String>::new(), "mounts left");
    storage_view(&d, "default").await.assert_consistent();
}

/// The blob paths of an OCI archive.
fn archive_blobs(bytes: &[u8]) -> BTreeSet<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .filter_map(|p| {
            p.strip_prefix("blobs/sha256/")
                .filter(|h| !h.is_empty())
                .map(|h| format!("sha256:{h}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_is_identical() {
    let d1 = TestDaemon::start();
    let c1 = d1.client();
    let (ly_file, ly) = build_image(d1.dir(), ImageKind::Layers, Format::OciArchive, None);
    let (bb_file, _) = build_image(d1.dir(), ImageKind::Busybox, Format::DockerArchive, None);
    import(&c1, &ly_file, "").await;
    let bb_target = import(&c1, &bb_file, "").await.images[0]
        .target
        .digest
        .clone();

    let layers_1 = export(&c1, "berth.test/layers:latest", "default").await;
    let layers_2 = export(&c1, "berth.test/layers:latest", "default").await;
    assert!(layers_1 == layers_2, "two exports of one image differ");
    let busybox_1 = export(&c1, "berth.test/busybox:latest", "default").await;
    assert!(busybox_1 == export(&c1, "berth.test/busybox:latest", "default").await);

    // The export holds exactly the image's blobs.
    let mut want: BTreeSet<String> = BTreeSet::new();
    want.insert(ly.digest.to_string());
    want.insert(ly.config_digest.to_string());
    want.extend(strings(&ly.layer_digests));
    assert_eq!(archive_blobs(&layers_1), want);

    // A second daemon imports the exports: same targets, same blobs, same snapshots.
    let d2 = TestDaemon::start();
    let c2 = d2.client();
    let f1 = d2.dir().join("layers-export.tar");
    std::fs::write(&f1, &layers_1).unwrap();
    let f2 = d2.dir().join("busybox-export.tar");
    std::fs::write(&f2, &busybox_1).unwrap();
    let r = import(&c2, &f1, "").await;
    assert_eq!(r.images[0].name, "berth.test/layers:latest");
    assert_eq!(r.images[0].target.digest, ly.digest.to_string());
    let r = import(&c2, &f2, "").await;
    assert_eq!(r.images[0].name, "berth.test/busybox:latest");
    assert_eq!(r.images[0].target.digest, bb_target);

    let v1 = storage_view(&d1, "default").await;
    let v2 = storage_view(&d2, "default").await;
    assert_eq!(v2.images, v1.images);
    assert_eq!(v2.content, v1.content, "blob sets differ");
    let keys = |v: &StorageView| v.snapshots.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v2), keys(&v1));
    v2.assert_consistent();
    for name in ["berth.test/layers:latest", "berth.test/busybox:latest"] {
        let (a, b) = (
            inspect(&c1, name, "default").await,
            inspect(&c2, name, "default").await,
        );
        assert!(b.unpacked);
        assert_eq!(
            (&a.manifest, &a.config, &a.layers, &a.chain_ids),
            (&b.manifest, &b.config, &b.layers, &b.chain_ids)
        );
    }
    // And exports again to the same bytes.
    assert!(export(&c2, "berth.test/layers:latest", "default").await == layers_1);
    assert!(export(&c2, "berth.test/busybox:latest", "default").await == busybox_1);
}

/// Tars an OCI layout directory the way a person would (`tar -C dir -cf out .`).
fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
}

/// Archives written by skopeo (OCI and docker) and an image changed by umoci import
/// and unpack as the builder's.
#[tokio::test(flavor = "multi_thread")]
async fn third_party_archives() {
    let skopeo = have_tool("skopeo");
    let umoci = have_tool("umoci");
    if !skopeo {
        eprintln!("skipping the skopeo part: skopeo is not installed (tools/install-deps.sh)");
    }
    if !umoci {
        eprintln!("skipping the umoci part: umoci is not installed (tools/install-deps.sh)");
    }
    if !skopeo && !umoci {
        return;
    }
    let d = TestDaemon::builder()
        .arg("--snapshotter")
        .arg("native")
        .start();
    let c = d.client();
    let (layout, built) = build_image(d.dir(), ImageKind::Layers, Format::OciDir, None);
    let src = format!("oci:{}:latest", layout.display());

    if skopeo {
        let oci = d.dir().join("skopeo-oci.tar");
        run_tool(
            "skopeo",
            &[
                "copy",
                "--quiet",
                &src,
                &format!("oci-archive:{}:berth.test/skopeo:oci", oci.display()),
            ],
        );
        let r = import(&c, &oci, "").await;
        assert_eq!(r.images[0].name, "berth.test/skopeo:oci");
        let i = inspect(&c, "berth.test/skopeo:oci", "default").await;
        assert!(i.unpacked);
        assert_eq!(i.config, built.config_digest.to_string());
        assert_eq!(i.chain_ids, strings(&built.chain_ids));
        // skopeo keeps compressed layers as they are (it compresses the plain one).
        assert_eq!(i.layers[..3], strings(&built.layer_digests)[..3]);

        // docker archives cannot hold zstd layers: the busybox image, written by
        // skopeo in the containers/image form (`<hex>.tar` layers, links to them).
        let (bb_layout, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciDir, None);
        let docker = d.dir().join("skopeo-docker.tar");
        run_tool(
            "skopeo",
            &[
                "copy",
                "--quiet",
                &format!("oci:{}:latest", bb_layout.display()),
                &format!(
                    "docker-archive:{}:berth.test/skopeo:docker",
                    docker.display()
                ),
            ],
        );
        let r = import(&c, &docker, "").await;
        assert_eq!(r.images[0].name, "berth.test/skopeo:docker");
        let i = inspect(&c, "berth.test/skopeo:docker", "default").await;
        assert!(i.unpacked);
        assert_eq!(i.config, bb.config_digest.to_string());
        assert_eq!(i.chain_ids, strings(&bb.chain_ids));
        assert_eq!(i.diff_ids, strings(&bb.diff_ids));
        let snaps = snapshots(&c, "default").await;
        let top = snapshot_id(&snaps, i.chain_ids.last().unwrap());
        let dir = d
            .root()
            .join("snapshots/native/snapshots")
            .join(top.to_string());
        assert!(dir.join("bin/busybox").is_file());
        assert!(!dir.join("data").exists());

        // The skopeo OCI archive unpacked in full.
        let i = inspect(&c, "berth.test/skopeo:oci", "default").await;
        let top = snapshot_id(&snaps, i.chain_ids.last().unwrap());
        let dir = d
            .root()
            .join("snapshots/native/snapshots")
            .join(top.to_string());
        check_layers_view(&dir, true).unwrap_or_else(|e| panic!("{e:#}"));
    }

    if umoci {
        // umoci (0.4 reads no zstd: the busybox image) unpacks the image, a file is
        // added and one deleted, and umoci repacks it: a new layer written by umoci's
        // own tar and gzip, with a whiteout.
        let work = d.dir().join("umoci");
        std::fs::create_dir(&work).unwrap();
        let (layout, bb) = build_image(&work, ImageKind::Busybox, Format::OciDir, None);
        let bundle = work.join("bundle");
        let image = format!("{}:latest", layout.display());
        let bundle_arg = bundle.to_str().unwrap();
        run_tool("umoci", &["unpack", "--image", &image, bundle_arg]);
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir(rootfs.join("umoci")).unwrap();
        std::fs::write(rootfs.join("umoci/hello"), "from umoci\n").unwrap();
        std::fs::remove_file(rootfs.join("etc/group")).unwrap();
        run_tool("umoci", &["repack", "--image", &image, bundle_arg]);
        run_tool(
            "umoci",
            &[
                "config",
                "--image",
                &image,
                "--config.label",
                "berth.test.umoci=yes",
            ],
        );
        run_tool("umoci", &["gc", "--layout", layout.to_str().unwrap()]);
        let archive = work.join("umoci.tar");
        tar_dir(&layout, &archive);
        let r = import(&c, &archive, "name=berth.test/umoci:latest").await;
        assert_eq!(r.images.len(), 1);
        assert_eq!(r.images[0].name, "berth.test/umoci:latest");
        let i = inspect(&c, "berth.test/umoci:latest", "default").await;
        assert!(i.unpacked);
        assert_eq!(i.layers.len(), 2, "{i:?}");
        assert_eq!(i.chain_ids[0], bb.chain_ids[0].to_string());
        assert_eq!(i.config_json["config"]["Labels"]["berth.test.umoci"], "yes");
        let snaps = snapshots(&c, "default").await;
        let top = snapshot_id(&snaps, i.chain_ids.last().unwrap());
        let dir = d
            .root()
            .join("snapshots/native/snapshots")
            .join(top.to_string());
        assert_eq!(
            std::fs::read_to_string(dir.join("umoci/hello")).unwrap(),
            "from umoci\n"
        );
        assert!(
            !dir.join("etc/group").exists(),
            "umoci's whiteout was not applied"
        );
        assert!(dir.join("etc/passwd").is_file());
        assert!(dir.join("bin/busybox").is_file());
    }
    let v = storage_view(&d, "default").await;
    v.assert_consistent();
    let report = gc(&c).await;
    assert_eq!((report.content_removed, report.snapshots_removed), (0, 0));
}

/// After SIGKILL with images stored, everything is still listed, and importing and
/// collecting still work.
#[tokio::test(flavor = "multi_thread")]
async fn images_survive_kill_9() {
    let mut d = TestDaemon::start();
    let c = d.client();
    let (bb_file, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let (ly_file, _) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    let (ma_file, ma) = build_image(d.dir(), ImageKind::Multiarch, Format::OciArchive, None);
    import(&c, &bb_file, "").await;
    import(&c, &ly_file, "").await;
    let before = storage_view(&d, "default").await;
    before.assert_consistent();
    let inspected = inspect(&c, "berth.test/layers:latest", "default").await;
    let last = journal(&c).await.len();

    d.kill_9();
    d.restart();

    assert_eq!(storage_view(&d, "default").await, before);
    assert_eq!(
        inspect(&c, "berth.test/layers:latest", "default").await,
        inspected
    );
    // Nothing was in flight: the restart reconciled nothing.
    let records = journal(&c).await;
    assert_eq!(records.len(), last, "{:?}", &records[last..]);

    // A new import: an index, unpacked for this host.
    let r = import(&c, &ma_file, "").await;
    assert_eq!(r.images[0].target.digest, ma.digest.to_string());
    assert_eq!(r.images[0].target.media_type, media::OCI_INDEX);
    let i = inspect(&c, "berth.test/multiarch:latest", "default").await;
    assert!(i.unpacked);
    assert_eq!(i.manifest, ma.manifest_digest.to_string());
    assert_eq!(i.chain_ids, strings(&bb.chain_ids));

    // Removing two images and collecting leaves the third's.
    remove_image(&c, "berth.test/layers:latest", "default").await;
    remove_image(&c, "berth.test/busybox:latest", "default").await;
    gc(&c).await;
    let v = storage_view(&d, "default").await;
    v.assert_consistent();
    assert_eq!(v.images.len(), 1);
    let mut want: BTreeSet<String> = strings(
        &ma.manifests
            .iter()
            .map(|m| m.digest.clone())
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .collect();
    want.insert(ma.digest.to_string());
    for m in &ma.manifests {
        want.insert(m.config_digest.to_string());
    }
    want.extend(strings(&ma.layer_digests));
    assert_eq!(v.content.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        v.snapshots.keys().cloned().collect::<Vec<_>>(),
        strings(&bb.chain_ids)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_labels_are_journaled_and_survive_a_restart() {
    use berth_http::api::types::{ContentView, LabelsRequest};
    use hyper::Method;
    let mut d = TestDaemon::start();
    let c = d.client();
    let (bb_file, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    import(&c, &bb_file, "").await;
    let digest = bb.config_digest.to_string();
    let mut labels = berth_engine::ids::Labels::new();
    labels.insert("owner".into(), "ops".into());
    let v: ContentView = c
        .call(
            Method::PUT,
            &format!("/v1/content/{digest}/labels"),
            Some(&LabelsRequest {
                labels: labels.clone(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(v.labels, labels);
    // Bad input is refused and changes nothing.
    let missing = format!("sha256:{}", "0".repeat(64));
    let err = c
        .call::<ContentView>(
            Method::PUT,
            &format!("/v1/content/{missing}/labels"),
            Some(&LabelsRequest {
                labels: labels.clone(),
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NotFound"), "{err}");
    let mut empty_key = berth_engine::ids::Labels::new();
    empty_key.insert(String::new(), "x".into());
    let err = c
        .call::<ContentView>(
            Method::PUT,
            &format!("/v1/content/{digest}/labels"),
            Some(&LabelsRequest { labels: empty_key }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("InvalidArgument"), "{err}");

    d.kill_9();
    d.restart();
    let listed = content(&c).await;
    let blob = listed.iter().find(|b| b.digest == digest).unwrap();
    assert_eq!(blob.labels, labels);
    assert!(journal(&c)
        .await
        .iter()
        .any(|r| r.topic == "content.labels_set"));
}
