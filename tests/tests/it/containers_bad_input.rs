//! Containers and bad input: every refusal is a JSON error naming what was wrong, the
//! CLI says it in one line with a non-zero exit, and nothing is left behind — no
//! container, no `container-*` snapshot, no bundle, no shim.

use berth_http::api::types::ContainerView;
use berth_http::client::Client;
use berth_tests::cli::{fails_with_1, ok};
use berth_tests::containers::{
    bundle_ids, daemon_with_busybox, get, run, sh, shim_processes, wait_log_line, STOPPABLE,
};
use berth_tests::storage::{snapshots, Reply};
use berth_tests::TestDaemon;
use hyper::Method;

/// What containers exist, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Footprint {
    containers: Vec<(String, String)>,
    container_snapshots: Vec<String>,
    bundles: Vec<String>,
    shims: Vec<u32>,
}

async fn footprint(d: &TestDaemon) -> Footprint {
    let c = d.client();
    let mut containers: Vec<(String, String)> = c
        .containers("default", "")
        .await
        .unwrap()
        .containers
        .into_iter()
        .map(|v: ContainerView| (v.id, v.status))
        .collect();
    containers.sort();
    let mut container_snapshots: Vec<String> = snapshots(&c, "default")
        .await
        .into_iter()
        .map(|s| s.key)
        .filter(|k| k.starts_with("container-"))
        .collect();
    container_snapshots.sort();
    let mut shims: Vec<u32> = shim_processes(d.state())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    shims.sort_unstable();
    Footprint {
        containers,
        container_snapshots,
        bundles: bundle_ids(d.state()),
        shims,
    }
}

async fn create(c: &Client, body: &str) -> Reply {
    Reply::send(c, Method::POST, "/v1/containers", Some(body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_problem_and_leave_nothing() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let running = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &running.id, "ready").await;
    let before = footprint(&d).await;
    assert_eq!(before.containers.len(), 1);
    assert_eq!(before.container_snapshots.len(), 1);
    assert_eq!(before.shims.len(), 1);
    let seq_before = berth_tests::last_seq(&c).await;

    let m = create(&c, r#"{"image":"nosuchimage"}"#)
        .await
        .error("unknown image", 404, "NotFound");
    assert!(m.contains("nosuchimage"), "{m}");
    let missing = d.dir().join("no-such-dir");
    let body = serde_json::json!({
        "image": "busybox",
        "mounts": [{"type": "bind", "source": missing, "destination": "/data"}]
    })
    .to_string();
    let m = create(&c, &body)
        .await
        .error("missing bind source", 400, "InvalidArgument");
    assert!(m.contains(&missing.display().to_string()), "{m}");
    let m = create(&c, r#"{"image":"busybox","memory":"12x"}"#)
        .await
        .error("bad memory", 400, "InvalidArgument");
    assert!(m.contains("memory") && m.contains("12x"), "{m}");
    let m = create(&c, r#"{"image":"busybox","memroy":"1g"}"#)
        .await
        .error("unknown field", 400, "InvalidArgument");
    assert!(m.contains("memroy"), "{m}");
    let m = create(&c, r#"{"image":"busybox","restart":"sometimes"}"#)
        .await
        .error("bad restart policy", 400, "InvalidArgument");
    assert!(m.contains("sometimes"), "{m}");
    let path = format!("/v1/containers/{}/start", running.id);
    let m = Reply::send(&c, Method::POST, &path, None).await.error(
        "start of a running container",
        409,
        "FailedPrecondition",
    );
    assert!(m.contains("running"), "{m}");
    let m = Reply::send(&c, Method::DELETE, "/v1/containers/nosuch", None)
        .await
        .error("delete of a missing container", 404, "NotFound");
    assert!(m.contains("nosuch"), "{m}");
    let id = "0123456789abcdef0123456789abcdef";
    Reply::send(&c, Method::DELETE, &format!("/v1/containers/{id}"), None)
        .await
        .error("delete of a missing id", 404, "NotFound");
    Reply::send(&c, Method::POST, "/v1/containers/nosuch/stop", None)
        .await
        .error("stop of a missing container", 404, "NotFound");
    Reply::send(&c, Method::GET, "/v1/containers/nosuch/logs", None)
        .await
        .error("logs of a missing container", 404, "NotFound");

    assert_eq!(footprint(&d).await, before);
    // None of the refusals wrote to the journal.
    assert_eq!(berth_tests::last_seq(&c).await, seq_before);

    // The same through the CLI: a non-zero exit and one line saying what was wrong.
    let line = fails_with_1("run of an unknown image", d.cli(&["run", "nosuchimage"]));
    assert!(line.contains("nosuchimage"), "{line}");
    let vol = format!("{}:/data", missing.display());
    let line = fails_with_1(
        "missing bind source",
        d.cli(&["run", "-v", &vol, "busybox", "true"]),
    );
    assert!(line.contains(&missing.display().to_string()), "{line}");
    let line = fails_with_1(
        "bad memory",
        d.cli(&["run", "--memory", "12x", "busybox", "true"]),
    );
    assert!(line.contains("12x"), "{line}");
    let line = fails_with_1(
        "start of a running container",
        d.cli(&["start", &running.id]),
    );
    assert!(line.contains("running"), "{line}");
    let line = fails_with_1("rm of a missing container", d.cli(&["rm", "nosuch"]));
    assert!(line.contains("nosuch"), "{line}");
    let line = fails_with_1("logs of a missing container", d.cli(&["logs", "nosuch"]));
    assert!(line.contains("nosuch"), "{line}");
    assert_eq!(footprint(&d).await, before);

    // A name already taken.
    ok(d.cli(&["create", "--name", "taken", "busybox", "true"]));
    let m = create(&c, r#"{"image":"busybox","name":"taken"}"#)
        .await
        .error("a taken name", 409, "AlreadyExists");
    assert!(m.contains("taken"), "{m}");
    ok(d.cli(&["rm", "taken"]));
    assert_eq!(footprint(&d).await, before);
}

/// A command that does not exist: the start fails naming it, and no shim, process or
/// mount of that start is left; the container can still be removed cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_that_fails_leaves_no_shim() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let before = footprint(&d).await;
    let created = c
        .create_container("default", &berth_tests::containers::req(&["nosuchcmd"]))
        .await
        .unwrap();
    let id = created.container.id;
    let path = format!("/v1/containers/{id}/start");
    let r = Reply::send(&c, Method::POST, &path, None).await;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(r.status >= 400, "{}: {text}", r.status);
    assert!(text.contains("nosuchcmd"), "{}: {text}", r.status);
    let v = get(&c, &id).await;
    assert!(
        v.status == "created" || v.status == "stopped",
        "after a failed start: {v:#?}"
    );
    let last_error = v.last_error.clone().unwrap_or_default();
    assert!(last_error.contains("nosuchcmd"), "{v:#?}");
    assert!(shim_processes(d.state()).is_empty());
    let runtime = berth_tests::containers::runtime_ids(d.state());
    assert!(runtime.is_empty(), "runtime state left: {runtime:?}");

    // The CLI's run says so in one line.
    let line = fails_with_1(
        "run of a missing command",
        d.cli(&["run", "--name", "nocmd", "busybox", "nosuchcmd"]),
    );
    assert!(line.contains("nosuchcmd"), "{line}");

    ok(d.cli(&["rm", &id, "nocmd"]));
    assert_eq!(footprint(&d).await, before);
    berth_tests::containers::assert_nothing_left(&d, &[&id]);
}
