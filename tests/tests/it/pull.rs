//! Pull and push against a real `docker-registry` (started per test on 127.0.0.1 with a
//! random port): round trips, platforms, a proxy that corrupts / cuts / stalls a layer,
//! SIGKILL of berthd during a pull, bad input.

use std::time::Duration;

use berth_http::api::types::{PullImageRequest, PushImageRequest};
use berth_http::client::Client;
use berth_tests::cli::{fails, ok};
use berth_tests::containers::api_error;
use berth_tests::registry::{available, closed_port, skopeo_push, Fault, Proxy, TestRegistry};
use berth_tests::storage::{
    build_image, content, gc, images, journal, snapshots, Format, ImageKind,
};
use berth_tests::TestDaemon;

fn req(reference: &str) -> PullImageRequest {
    PullImageRequest {
        reference: reference.to_string(),
        platform: None,
        auth: None,
    }
}

/// Topics and bodies of the journal's pull events.
async fn pull_events(c: &Client) -> Vec<(String, serde_json::Value)> {
    journal(c)
        .await
        .into_iter()
        .filter(|e| e.topic.starts_with("pull."))
        .map(|e| (e.topic, e.event))
        .collect()
}

/// What a finished pull must not leave behind: no lease, no ingest, no extract
/// snapshot.
async fn assert_no_pull_leftovers(d: &TestDaemon) {
    let ingest = d.root().join("content").join("ingest");
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .map(|r| r.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "ingests left: {left:?}");
    let snaps = snapshots(&d.client(), "default").await;
    assert!(
        snaps.iter().all(|s| !s.key.starts_with("extract-")),
        "{snaps:?}"
    );
    let text = ok(d.cli(&["--json", "system", "df"]));
    assert!(!text.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_round_trip_and_run() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let src = TestDaemon::start();
    let (archive, built) = build_image(src.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let (layers_archive, layers_built) =
        build_image(src.dir(), ImageKind::Layers, Format::OciArchive, None);

    // busybox goes in with skopeo; layers with berth's own push.
    let busybox = format!("{}/test/busybox:v1", reg.host());
    skopeo_push(&archive, &busybox);
    berth_tests::storage::import(&src.client(), &layers_archive, "").await;
    let layers = format!("{}/test/layers:v1", reg.host());
    let pushed = src
        .client()
        .push_image(
            "default",
            "berth.test/layers:latest",
            &PushImageRequest {
                target: Some(layers.clone()),
                auth: None,
            },
        )
        .await
        .expect("push");
    assert_eq!(pushed.digest, layers_built.digest.to_string());
    assert!(pushed.uploaded >= 2, "{pushed:?}");
    // A second push finds every blob there.
    let again = ok(src.cli(&["push", "berth.test/layers:latest", &layers]));
    assert!(again.contains(&layers_built.digest.to_string()), "{again}");

    let d = TestDaemon::start();
    let c = d.client();
    let r = c.pull_image("default", &req(&busybox)).await.expect("pull");
    assert_eq!(r.image, busybox);
    assert_eq!(r.digest, built.digest.to_string());
    let out = ok(d.cli(&["pull", &layers]));
    assert!(
        out.contains(&format!("{layers} {}", layers_built.digest)),
        "{out}"
    );
    let names: Vec<String> = images(&c, "default")
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert!(
        names.contains(&busybox) && names.contains(&layers),
        "{names:?}"
    );

    // The journal has the milestones, one layer_fetched per layer.
    let events = pull_events(&c).await;
    let topics: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics.iter().filter(|t| **t == "pull.started").count(), 2);
    assert_eq!(topics.iter().filter(|t| **t == "pull.completed").count(), 2);
    assert_eq!(
        topics
            .iter()
            .filter(|t| **t == "pull.layer_fetched")
            .count(),
        built.layer_digests.len() + layers_built.layer_digests.len()
    );
    assert_no_pull_leftovers(&d).await;

    // Pulling again is quick and changes nothing; the image runs.
    let again = c
        .pull_image("default", &req(&busybox))
        .await
        .expect("pull again");
    assert_eq!(again.digest, r.digest);
    assert_eq!(ok(d.cli(&["run", "--rm", &busybox, "echo", "hi"])), "hi\n");

    // A pulled image pushes back byte for byte (the same digest under another repo).
    let copy = format!("{}/copy/busybox:v2", reg.host());
    let out = ok(d.cli(&["push", &busybox, &copy]));
    assert!(out.contains(&built.digest.to_string()), "{out}");
    drop(reg);
}

#[tokio::test(flavor = "multi_thread")]
async fn multiarch_pulls_host_platform_or_the_one_asked() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Multiarch, Format::OciArchive, None);
    let reference = format!("{}/test/multi:v1", reg.host());
    skopeo_push(&archive, &reference);
    let host = berth_engine::image::Platform::host().to_string();
    let host_manifest = built
        .manifests
        .iter()
        .find(|m| m.platform == host)
        .expect("a host manifest")
        .digest
        .to_string();
    let other = built
        .manifests
        .iter()
        .find(|m| m.platform != host)
        .expect("another platform");
    let c = d.client();

    let r = c
        .pull_image("default", &req(&reference))
        .await
        .expect("pull");
    assert_eq!(r.digest, built.digest.to_string());
    let have: Vec<String> = content(&c).await.into_iter().map(|b| b.digest).collect();
    assert!(have.contains(&host_manifest), "{have:?}");
    assert!(!have.contains(&other.digest.to_string()), "{have:?}");
    assert_eq!(
        ok(d.cli(&["run", "--rm", &reference, "echo", "hi"])),
        "hi\n"
    );

    let platform = other.platform.to_string();
    let d2 = TestDaemon::start();
    let out = ok(d2.cli(&["pull", "--platform", &platform, &reference]));
    assert!(out.contains(&built.digest.to_string()), "{out}");
    let have: Vec<String> = content(&d2.client())
        .await
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert!(have.contains(&other.digest.to_string()), "{have:?}");
    assert!(!have.contains(&host_manifest), "{have:?}");
    let started = pull_events(&d2.client()).await;
    assert_eq!(started[0].1["platform"], platform.as_str(), "{started:?}");

    // An index pulled for one platform cannot be pushed whole: a clear 409.
    let elsewhere = format!("{}/test/multi-copy:v1", reg.host());
    let err = fails(
        "push of a partial index",
        d.cli(&["push", &reference, &elsewhere]),
    );
    assert!(err.contains("lacks manifest"), "{err}");
    // An imported index (every platform) goes up whole, digest for digest.
    berth_tests::storage::import(&d.client(), &archive, "").await;
    let out = ok(d.cli(&["push", "berth.test/multiarch:latest", &elsewhere]));
    assert!(out.contains(&built.digest.to_string()), "{out}");
    let d3 = TestDaemon::start();
    let r = d3
        .client()
        .pull_image("default", &req(&elsewhere))
        .await
        .expect("pull of the pushed index");
    assert_eq!(r.digest, built.digest.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_layer_fails_and_commits_nothing() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &format!("{}/test/busybox:v1", reg.host()));
    let layer = built.layer_digests[0].to_string();
    let proxy = Proxy::start(reg.port, Fault::Corrupt(layer.clone()));
    let reference = format!("{}/test/busybox:v1", proxy.host());
    let c = d.client();
    let (status, kind, message) = api_error(c.pull_image("default", &req(&reference)).await);
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidArgument"),
        "{message}"
    );
    assert!(message.contains("digest mismatch"), "{message}");
    assert!(proxy.faulted() >= 1);
    assert!(images(&c, "default").await.is_empty());
    let have: Vec<String> = content(&c).await.into_iter().map(|b| b.digest).collect();
    assert!(!have.contains(&layer), "{have:?}");
    assert!(!d
        .root()
        .join("content/blobs")
        .join(layer.replace(':', "/"))
        .exists());
    let events = pull_events(&c).await;
    let failed = events
        .iter()
        .find(|(t, _)| t == "pull.failed")
        .expect("pull.failed");
    assert!(
        failed.1["reason"]
            .as_str()
            .unwrap()
            .contains("digest mismatch"),
        "{failed:?}"
    );
    gc(&c).await;
    assert_no_pull_leftovers(&d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connection_resumes_with_range() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &format!("{}/test/busybox:v1", reg.host()));
    let layer = built.layer_digests[0].to_string();
    let proxy = Proxy::start(reg.port, Fault::DropOnce(layer, 200_000));
    let reference = format!("{}/test/busybox:v1", proxy.host());
    let r = d
        .client()
        .pull_image("default", &req(&reference))
        .await
        .expect("the pull resumes and completes");
    assert_eq!(r.digest, built.digest.to_string());
    assert_eq!(proxy.faulted(), 1);
    let ranges = proxy.ranges();
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "no Range request after the cut: {ranges:?}"
    );
    assert_eq!(
        ok(d.cli(&["run", "--rm", &reference, "echo", "hi"])),
        "hi\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_pull_fails_it_cleanly() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let mut d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &format!("{}/test/busybox:v1", reg.host()));
    let layer = built.layer_digests[0].to_string();
    let proxy = Proxy::start(reg.port, Fault::Stall(layer, 100_000));
    let reference = format!("{}/test/busybox:v1", proxy.host());
    let c = d.client();
    let pull = tokio::spawn(async move { c.pull_image("default", &req(&reference)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while proxy.faulted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the bytes before the stall reach the ingest.
    tokio::time::sleep(Duration::from_millis(800)).await;
    d.kill_9();
    assert!(pull.await.unwrap().is_err());
    d.restart();
    let c = d.client();
    let events = pull_events(&c).await;
    let failed = events
        .iter()
        .find(|(t, _)| t == "pull.failed")
        .unwrap_or_else(|| panic!("no pull.failed: {events:?}"));
    assert_eq!(failed.1["reason"], "interrupted by a daemon restart");
    assert!(images(&c, "default").await.is_empty());
    gc(&c).await;
    assert_no_pull_leftovers(&d).await;
    let leases = ok(d.cli(&["--json", "journal", "stats"]));
    assert!(!leases.is_empty());
    let state_leases: Vec<_> = journal(&c)
        .await
        .into_iter()
        .filter(|e| e.topic == "lease.created")
        .map(|e| e.event["id"].as_str().unwrap_or("").to_string())
        .collect();
    let deleted: Vec<_> = journal(&c)
        .await
        .into_iter()
        .filter(|e| e.topic == "lease.deleted")
        .map(|e| e.event["id"].as_str().unwrap_or("").to_string())
        .collect();
    for l in &state_leases {
        assert!(deleted.contains(l), "lease {l} is still held");
    }
    assert!(snapshots(&c, "default").await.is_empty());

    // Again, but this time the next pull comes before a collection: it continues the
    // interrupted ingest from its offset (a Range request) instead of starting over.
    let stalled = Proxy::start(
        reg.port,
        Fault::Stall(built.layer_digests[0].to_string(), 150_000),
    );
    let reference = format!("{}/test/busybox:v1", stalled.host());
    let c = d.client();
    let r = reference.clone();
    let pull = tokio::spawn(async move { c.pull_image("default", &req(&r)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stalled.faulted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    d.kill_9();
    assert!(pull.await.unwrap().is_err());
    d.restart();
    let plain = Proxy::start(reg.port, Fault::None);
    let reference = format!("{}/test/busybox:v1", plain.host());
    let r = d
        .client()
        .pull_image("default", &req(&reference))
        .await
        .expect("the pull after the restart");
    assert_eq!(r.digest, built.digest.to_string());
    let ranges = plain.ranges();
    assert!(
        ranges
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "the interrupted ingest was not resumed: {ranges:?}"
    );
    gc(&d.client()).await;
    assert_no_pull_leftovers(&d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_references_hosts_and_tags() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let c = d.client();
    let (status, kind, message) = api_error(c.pull_image("default", &req("Not A Ref!")).await);
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidArgument"),
        "{message}"
    );
    assert!(message.contains("invalid reference"), "{message}");
    let (status, _, message) = api_error(c.pull_image("default", &req("busybox")).await);
    assert_eq!(status, 400, "{message}");

    let nowhere = format!("127.0.0.1:{}/test/busybox:v1", closed_port());
    let (status, kind, message) = api_error(c.pull_image("default", &req(&nowhere)).await);
    assert_eq!((status, kind.as_str()), (503, "Unavailable"), "{message}");
    assert!(message.contains("cannot reach registry"), "{message}");
    // A registry host that does not exist is the caller's mistake: a 4xx naming it.
    let unknown = "nonexistent.invalid:5000/test/busybox:v1";
    let (status, kind, message) = api_error(c.pull_image("default", &req(unknown)).await);
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidArgument"),
        "{message}"
    );
    assert!(message.contains("nonexistent.invalid:5000"), "{message}");

    let missing = format!("{}/test/nothing:v1", reg.host());
    let (status, kind, message) = api_error(c.pull_image("default", &req(&missing)).await);
    assert_eq!((status, kind.as_str()), (404, "NotFound"), "{message}");
    let err = fails("pull of a missing tag", d.cli(&["pull", &missing]));
    assert!(err.contains("NotFound"), "{err}");
    let err = fails(
        "a bad platform",
        d.cli(&["pull", "--platform", "nope", &missing]),
    );
    assert!(!err.is_empty());
    assert!(images(&c, "default").await.is_empty());
    assert_no_pull_leftovers(&d).await;
}

/// The NDJSON lines of a streamed pull, read to the end.
async fn stream_lines(c: &Client, reference: &str) -> Vec<serde_json::Value> {
    let mut lines = c
        .pull_image_stream("default", &req(reference))
        .await
        .expect("stream");
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().await {
        let line = line.expect("a line");
        out.push(serde_json::from_slice(&line).expect("JSON line"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_pulls_share_one_pull_and_run_pulls_a_missing_image() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &format!("{}/test/busybox:v1", reg.host()));
    skopeo_push(&archive, &format!("{}/test/busybox:v2", reg.host()));
    let layer = built.layer_digests[0].to_string();
    let proxy = Proxy::start(reg.port, Fault::Stall(layer.clone(), 100_000));
    let reference = format!("{}/test/busybox:v1", proxy.host());

    // Two requests for the same reference while the first is stalled: one pull.
    let (c1, c2, r1, r2) = (d.client(), d.client(), reference.clone(), reference.clone());
    let a = tokio::spawn(async move { stream_lines(&c1, &r1).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while proxy.faulted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = tokio::spawn(async move { c2.pull_image("default", &req(&r2)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.release();
    let lines = a.await.unwrap();
    let joined = b.await.unwrap().expect("the joined pull");
    let first = &lines[0];
    assert_eq!(first["status"], "started", "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "completed", "{lines:?}");
    assert_eq!(last["digest"], built.digest.to_string());
    assert_eq!(last["pull_id"], first["pull_id"]);
    assert_eq!(joined.pull_id, first["pull_id"].as_str().unwrap());
    assert!(lines.iter().any(|l| l["status"] == "resolved"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["layer"] == layer.as_str() && l["total"].as_u64().is_some()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == "layer_done" && l["layer"] == layer.as_str()),
        "{lines:?}"
    );
    assert_eq!(
        pull_events(&d.client())
            .await
            .iter()
            .filter(|(t, _)| t == "pull.started")
            .count(),
        1
    );

    // `berth run` of a registry image that is not here pulls it first.
    let v2 = format!("{}/test/busybox:v2", reg.host());
    let out = d.cli(&["run", "--rm", &v2, "echo", "hi"]);
    assert_eq!(ok(out), "hi\n");
    let names: Vec<String> = images(&d.client(), "default")
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert!(names.contains(&v2), "{names:?}");

    // A streamed pull that fails ends with an error line.
    let missing = format!("{}/test/nothing:v1", reg.host());
    let lines = stream_lines(&d.client(), &missing).await;
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["kind"], "NotFound", "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_credentials_and_wrong_ones() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = berth_tests::registry::htpasswd_file(tmp.path(), "alice", "s3cret");
    let reg = TestRegistry::with_htpasswd(&htpasswd);
    let creds_file = tmp.path().join("docker").join("config.json");
    let d = TestDaemon::builder()
        .config(&format!(
            "[registry]\ncredentials_file = \"{}\"\n",
            creds_file.display()
        ))
        .start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let reference = format!("{}/test/busybox:v1", reg.host());
    berth_tests::registry::skopeo_push_as(&archive, &reference, Some("alice:s3cret"));
    let c = d.client();

    // Nothing stored yet: 401 with a hint.
    let (status, kind, message) = api_error(c.pull_image("default", &req(&reference)).await);
    assert_eq!(
        (status, kind.as_str()),
        (401, "Unauthenticated"),
        "{message}"
    );
    // Wrong credentials in the request: 401.
    let mut wrong = req(&reference);
    wrong.auth = Some(berth_http::api::types::RegistryAuth {
        username: "alice".into(),
        password: "nope".into(),
    });
    let (status, _, message) = api_error(c.pull_image("default", &wrong).await);
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("refused the credentials"), "{message}");

    // `berth login` writes the file the daemon reads.
    let mut login = std::process::Command::new(berth_tests::bins::bin("berth"));
    login
        .args(["login", &reg.host(), "-u", "alice", "--password-stdin"])
        .arg("--credentials-file")
        .arg(&creds_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&creds_file).unwrap();
    assert!(
        text.contains(&reg.host()) && text.contains("auths"),
        "{text}"
    );
    let r = c
        .pull_image("default", &req(&reference))
        .await
        .expect("pull");
    assert_eq!(r.digest, built.digest.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_images_sharing_a_layer_fetch_it_once() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &format!("{}/one/busybox:v1", reg.host()));
    skopeo_push(&archive, &format!("{}/two/busybox:v1", reg.host()));
    let layer = built.layer_digests[0].to_string();
    let proxy = Proxy::start(reg.port, Fault::Stall(layer.clone(), 100_000));
    let (one, two) = (
        format!("{}/one/busybox:v1", proxy.host()),
        format!("{}/two/busybox:v1", proxy.host()),
    );
    let (c1, c2) = (d.client(), d.client());
    let o = one.clone();
    let a = tokio::spawn(async move { c1.pull_image("default", &req(&o)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while proxy.faulted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer never stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = two.clone();
    let b = tokio::spawn(async move { c2.pull_image("default", &req(&t)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.release();
    let (ra, rb) = (
        a.await.unwrap().expect("one"),
        b.await.unwrap().expect("two"),
    );
    assert_ne!(ra.pull_id, rb.pull_id, "two references are two pulls");
    let gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{layer}")))
        .collect();
    assert_eq!(
        gets.len(),
        1,
        "the shared layer was fetched more than once: {gets:?}"
    );
    let fetched = pull_events(&d.client())
        .await
        .into_iter()
        .filter(|(t, e)| t == "pull.layer_fetched" && e["digest"] == layer.as_str())
        .count();
    assert_eq!(fetched, 2, "each pull records the layer");
    assert_no_pull_leftovers(&d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_registry_with_a_ca_from_certs_d() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = berth_tests::registry::make_certs(tmp.path());
    let reg = TestRegistry::with_tls(&cert, &key);
    let reference = format!("{}/test/busybox:v1", reg.host());
    // Loopback is not insecure here: the certificate must verify.
    let certs_d = tmp.path().join("certs.d");
    let strict = |certs: &std::path::Path| {
        format!(
            "[registry]\ninsecure_loopback = false\ncerts_dir = \"{}\"\n",
            certs.display()
        )
    };
    let d = TestDaemon::builder().config(&strict(&certs_d)).start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    skopeo_push(&archive, &reference);

    // Without the CA: refused, nothing stored.
    let (status, _, message) = api_error(d.client().pull_image("default", &req(&reference)).await);
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert!(images(&d.client(), "default").await.is_empty());

    // With <certs_dir>/<host:port>/ca.crt: verified and pulled (the daemon reads the
    // directory when it connects).
    let dir = certs_d.join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&ca, dir.join("ca.crt")).unwrap();
    let d2 = TestDaemon::builder().config(&strict(&certs_d)).start();
    let r = d2
        .client()
        .pull_image("default", &req(&reference))
        .await
        .expect("pull over TLS");
    assert_eq!(r.digest, built.digest.to_string());
}

/// Byte-level progress reaches event-stream subscribers as `pull.progress` notices,
/// without an `id:` (never a resume point) and never in the journal; a topic filter
/// that does not ask for pulls does not get them.
#[tokio::test(flavor = "multi_thread")]
async fn pull_progress_is_broadcast_on_the_event_stream_but_not_journaled() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, _) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    let reference = format!("{}/test/layers:v1", reg.host());
    skopeo_push(&archive, &reference);
    let c = d.client();
    let mut pulls = c.events("topic=pull.", None).await.unwrap();
    let mut others = c.events("topic=namespace.", None).await.unwrap();
    c.pull_image("default", &req(&reference)).await.unwrap();

    let mut progress = Vec::new();
    loop {
        let m = berth_tests::next_event(&mut pulls).await;
        match m.event.as_deref() {
            Some("pull.progress") => {
                assert_eq!(m.id, None, "a notice has no id: {m:?}");
                let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
                assert_eq!(v["stream"]["kind"], "pull", "{v}");
                assert_eq!(v["event"]["reference"], reference.as_str(), "{v}");
                progress.push(v["event"]["status"].as_str().unwrap_or("").to_string());
            }
            Some("pull.completed") => {
                assert!(m.id.is_some(), "a journal record has its seq: {m:?}");
                break;
            }
            _ => assert!(m.id.is_some(), "{m:?}"),
        }
    }
    assert!(
        progress.iter().any(|s| s == "layer_done"),
        "no layer progress seen: {progress:?}"
    );
    assert!(
        journal(&c).await.iter().all(|r| r.topic != "pull.progress"),
        "progress must not be journaled"
    );
    // The other subscriber saw nothing of it (only keep-alives would come).
    let quiet = tokio::time::timeout(Duration::from_millis(300), others.next()).await;
    assert!(quiet.is_err(), "a namespace.-only subscriber got {quiet:?}");
}

/// Without `wait` or `stream` the pull answers 202 at once with its id; its outcome is
/// on the event stream and in the journal under that id.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwaited_pull_answers_202_and_finishes_on_its_own() {
    if !available() {
        return;
    }
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let (archive, built) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let reference = format!("{}/test/busybox:async", reg.host());
    skopeo_push(&archive, &reference);
    let c = d.client();
    let mut events = c
        .events("topic=pull.completed,pull.failed", None)
        .await
        .unwrap();
    let accepted = c.start_pull("default", &req(&reference)).await.unwrap();
    assert_eq!(accepted.reference, reference);
    let m = berth_tests::next_event(&mut events).await;
    assert_eq!(m.event.as_deref(), Some("pull.completed"), "{m:?}");
    let e = m.envelope().unwrap();
    assert_eq!(e.stream.id, accepted.pull_id, "{e:?}");
    assert_eq!(e.event["digest"], built.digest.to_string(), "{e:?}");
    assert_eq!(
        ok(d.cli(&["run", "--rm", &reference, "echo", "hi"])),
        "hi\n"
    );
    // A malformed reference is still refused before anything starts.
    let (status, _, _) = api_error(c.start_pull("default", &req("Not A Ref")).await);
    assert_eq!(status, 400);
}
