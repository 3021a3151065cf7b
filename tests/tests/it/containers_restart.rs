//! Containers across restarts: restart policies, a daemon killed with SIGKILL while its
//! containers run (and one exits), a shim killed while the daemon runs.

use std::time::{Duration, Instant, SystemTime};

use berth_http::api::types::{CreateContainerRequest, ExecRequestBody};
use berth_tests::cli::ok;
use berth_tests::containers::{
    daemon_with_busybox, get, log_texts, pid_alive, poll, run, sh, sigkill, wait_log_line,
    wait_status, STATUS_TIMEOUT, STOPPABLE,
};
use berth_tests::storage::journal;

/// Topics of the journal's records about container `id`, in order.
async fn topics_of(c: &berth_http::client::Client, id: &str) -> Vec<(String, serde_json::Value)> {
    journal(c)
        .await
        .into_iter()
        .filter(|r| r.event["id"] == id)
        .map(|r| (r.topic, r.event))
        .collect()
}

fn count(topics: &[(String, serde_json::Value)], topic: &str) -> usize {
    topics.iter().filter(|(t, _)| t == topic).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_restarts_up_to_its_maximum() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let mut events = c.events("topic=container.", None).await.unwrap();
    let v = run(
        &c,
        &CreateContainerRequest {
            restart: Some("on-failure:2".into()),
            ..sh("echo attempt; exit 5")
        },
    )
    .await;
    let id = v.id.as_str();
    // Three runs, then it stays stopped.
    let v = poll("the third exit", STATUS_TIMEOUT, || async {
        let v = get(&c, id).await;
        (v.status == "stopped" && v.restart_count == 2).then_some(v)
    })
    .await;
    assert_eq!(v.exit.as_ref().and_then(|e| e.code), Some(5), "{v:#?}");
    assert_eq!(v.restart_policy, "on-failure:2");
    // Nothing more happens (the back-off of a third restart would be 400 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = get(&c, id).await;
    assert_eq!((v.status.as_str(), v.restart_count), ("stopped", 2));
    assert_eq!(log_texts(&c, id).await, ["attempt", "attempt", "attempt"]);

    let topics = topics_of(&c, id).await;
    assert_eq!(count(&topics, "container.started"), 3, "{topics:#?}");
    assert_eq!(
        count(&topics, "container.network_attached"),
        3,
        "{topics:#?}"
    );
    assert_eq!(count(&topics, "container.exited"), 3, "{topics:#?}");
    let attempts: Vec<&serde_json::Value> = topics
        .iter()
        .filter(|(t, _)| t == "container.restart_scheduled")
        .map(|(_, e)| &e["attempt"])
        .collect();
    assert_eq!(attempts, [1, 2], "{topics:#?}");
    for (t, e) in &topics {
        if t == "container.exited" {
            assert_eq!(e["exit"]["code"], 5, "{e}");
        }
    }
    // The event stream said the same, in order; on the default (bridge) network every
    // start attaches it and every exit detaches it (after the restart is scheduled).
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|t: &&String| *t == "container.network_detached")
        .count()
        < 3
    {
        let m = berth_tests::next_event(&mut events).await;
        let e = m.envelope().unwrap();
        if e.event["id"] == id {
            seen.push(e.topic);
        }
    }
    let run = [
        "container.start_requested",
        "container.network_attach_requested",
        "container.network_attached",
        "container.started",
        "container.exited",
    ];
    let mut want = vec!["container.create_requested", "container.created"];
    want.extend(run);
    want.push("container.restart_scheduled");
    want.push("container.network_detached");
    want.extend(run);
    want.push("container.restart_scheduled");
    want.push("container.network_detached");
    want.extend(run);
    want.push("container.network_detached");
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn always_is_not_restarted_after_a_stop() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let v = run(
        &c,
        &CreateContainerRequest {
            restart: Some("always".into()),
            ..sh(STOPPABLE)
        },
    )
    .await;
    let id = v.id.as_str();
    wait_log_line(&c, id, "ready").await;
    // Not restarted after a stop.
    ok(d.cli(&["stop", id]));
    assert_eq!(ok(d.cli(&["wait", id])), "143\n");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = get(&c, id).await;
    assert_eq!(
        (v.status.as_str(), v.restart_count),
        ("stopped", 0),
        "{v:#?}"
    );
    let topics = topics_of(&c, id).await;
    assert_eq!(count(&topics, "container.started"), 1, "{topics:#?}");
    assert_eq!(count(&topics, "container.restart_scheduled"), 0);

    // A clean exit of an `always` container is restarted (once here: the second run
    // finds the marker in its rootfs and stays up).
    let r = run(
        &c,
        &CreateContainerRequest {
            restart: Some("always".into()),
            ..sh("echo tick; [ -e /marker ] && exec sleep 1000; touch /marker")
        },
    )
    .await;
    let r = poll(
        "the restart of an always container",
        STATUS_TIMEOUT,
        || async {
            let v = get(&c, &r.id).await;
            (v.status == "running" && v.restart_count == 1).then_some(v)
        },
    )
    .await;
    let topics = topics_of(&c, &r.id).await;
    let exits: Vec<&serde_json::Value> = topics
        .iter()
        .filter(|(t, _)| t == "container.exited")
        .map(|(_, e)| &e["exit"]["code"])
        .collect();
    assert_eq!(exits, [0], "{topics:#?}");
    assert_eq!(count(&topics, "container.started"), 2, "{topics:#?}");
    assert_eq!(log_texts(&c, &r.id).await, ["tick", "tick"]);
}

/// How many long-running containers survive the daemon's SIGKILL.
const SURVIVORS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn containers_outlive_a_killed_daemon() {
    let mut d = daemon_with_busybox().await;
    let c = d.client();
    let mut up = Vec::new();
    for i in 0..SURVIVORS {
        let script = format!("trap 'exit 143' TERM; echo up-{i}; sleep 1000 & wait");
        up.push(run(&c, &sh(&script)).await);
    }
    let short = run(&c, &sh("sleep 3; exit 7")).await;
    // Exits while the daemon is down too, and is restarted by its policy once the
    // daemon is back (its second run finds the marker and stays up).
    let again = run(
        &c,
        &CreateContainerRequest {
            restart: Some("on-failure:1".into()),
            ..sh("[ -e /marker ] && exec sleep 1000; touch /marker; sleep 3; exit 9")
        },
    )
    .await;
    let paused = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &paused.id, "ready").await;
    c.container_verb("default", &paused.id, "pause", "")
        .await
        .unwrap();
    for v in &up {
        assert_eq!(v.status, "running");
        assert!(pid_alive(v.pid.unwrap()));
    }

    d.kill_9();
    let exit_file = d
        .state()
        .join("containers")
        .join(&short.id)
        .join("exit.json");
    let short_pid = short.pid.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(short_pid) || !exit_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the short container did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again_pid = again.pid.unwrap();
    while pid_alive(again_pid) {
        assert!(
            Instant::now() < deadline,
            "the on-failure container did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exited_by = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.restart();

    for v in &up {
        let now = get(&c, &v.id).await;
        assert_eq!(now.status, "running", "{now:#?}");
        assert_eq!(now.pid, v.pid, "{now:#?}");
        assert_eq!(now.shim_pid, v.shim_pid, "{now:#?}");
        assert!(pid_alive(v.pid.unwrap()));
    }
    let s = wait_status(&c, &short.id, "stopped").await;
    let exit = s.exit.as_ref().expect("an exit");
    assert_eq!(exit.code, Some(7), "{s:#?}");
    let exit_ms = exit.at.timestamp_millis();
    let started_ms = s.started_at.unwrap().timestamp_millis();
    let by_ms = i64::try_from(
        exited_by
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(
        exit_ms >= started_ms + 2000 && exit_ms <= by_ms,
        "exit at {exit_ms}: started {started_ms}, seen exited by {by_ms}"
    );
    let out = ok(d.cli(&["ps", "-a"]));
    assert!(out.contains("exited (7)"), "{out}");
    // The exit recorded at recovery applies the restart policy.
    let a = poll(
        "the restart of the on-failure container",
        STATUS_TIMEOUT,
        || async {
            let v = get(&c, &again.id).await;
            (v.status == "running" && v.restart_count == 1).then_some(v)
        },
    )
    .await;
    assert_ne!(a.pid, again.pid);
    let topics = topics_of(&c, &again.id).await;
    let exits: Vec<&serde_json::Value> = topics
        .iter()
        .filter(|(t, _)| t == "container.exited")
        .map(|(_, e)| &e["exit"]["code"])
        .collect();
    assert_eq!(exits, [9], "{topics:#?}");
    // The paused one is still paused, and resumes.
    let p = get(&c, &paused.id).await;
    assert_eq!((p.status.as_str(), p.pid), ("paused", paused.pid), "{p:#?}");
    assert!(berth_tests::containers::cgroup_frozen(&paused.id));
    c.container_verb("default", &paused.id, "resume", "")
        .await
        .unwrap();
    assert_eq!(
        c.container_verb("default", &paused.id, "stop", "")
            .await
            .unwrap()
            .container
            .exit
            .unwrap()
            .code,
        Some(143)
    );

    // Controllable: logs, exec, stop.
    for (i, v) in up.iter().enumerate() {
        assert_eq!(log_texts(&c, &v.id).await, [format!("up-{i}")]);
    }
    let r = c
        .exec(
            "default",
            &up[3].id,
            &ExecRequestBody {
                cmd: vec!["sh".into(), "-c".into(), "echo exec; exit 2".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (2, "exec\n"));
    for v in &up[..3] {
        let t0 = Instant::now();
        let res = c
            .container_verb("default", &v.id, "stop", "timeout=5")
            .await
            .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        assert_eq!(res.container.status, "stopped");
        assert_eq!(res.container.exit.as_ref().unwrap().code, Some(143));
        assert!(!pid_alive(v.pid.unwrap()));
    }
    // A container started before the restart still writes to its log.
    c.exec(
        "default",
        &up[4].id,
        &ExecRequestBody {
            cmd: vec!["sh".into(), "-c".into(), "echo late > /proc/1/fd/1".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_log_line(&c, &up[4].id, "late").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shim_is_reported_and_its_container_killed() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let v = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &v.id, "ready").await;
    let (pid, shim_pid) = (v.pid.unwrap(), v.shim_pid.unwrap());
    sigkill(shim_pid);
    let s = wait_status(&c, &v.id, "stopped").await;
    let exit = s.exit.as_ref().expect("an exit");
    assert_eq!(exit.code, None, "{s:#?}");
    let reason = s.exit_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("shim"), "{s:#?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the container's process {pid} outlived its shim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = ok(d.cli(&["ps", "-a"]));
    assert!(out.contains("exited (?)"), "{out}");

    // The same for a paused container (its frozen process must still be killed).
    let p = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &p.id, "ready").await;
    c.container_verb("default", &p.id, "pause", "")
        .await
        .unwrap();
    sigkill(p.shim_pid.unwrap());
    let s = wait_status(&c, &p.id, "stopped").await;
    assert_eq!(s.exit.as_ref().unwrap().code, None, "{s:#?}");
    assert!(
        s.exit_reason
            .as_deref()
            .unwrap_or_default()
            .contains("shim"),
        "{s:#?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(p.pid.unwrap()) {
        assert!(
            Instant::now() < deadline,
            "a paused process outlived its shim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok(d.cli(&["rm", &p.id]));
    // It can be started again, and removed.
    c.container_verb("default", &v.id, "start", "")
        .await
        .unwrap();
    wait_status(&c, &v.id, "running").await;
    ok(d.cli(&["rm", "-f", &v.id]));
    berth_tests::containers::assert_nothing_left(&d, &[&v.id]);
}
