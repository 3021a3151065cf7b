//! Containers end to end with runc and the busybox test image: `berth run` and logs,
//! stop timeouts, resource limits and mounts in force inside, exec/pause/rm/ps, the
//! event sequence of a run, a created container across a daemon restart, and the test
//! harness's own cleanup of containers.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_http::api::types::ExecRequestBody;
use berth_tests::cli::{fails_with_1, ok, stderr, stdout};
use berth_tests::containers::{
    api_error, assert_nothing_left, cgroup_dirs, cgroup_frozen, daemon_with_busybox, get,
    log_lines, pid_alive, poll, run, sh, shim_processes, wait_log_line, Leftovers, STATUS_TIMEOUT,
    STOPPABLE,
};
use berth_tests::storage::{mounts_under, snapshots};
use berth_tests::{next_event, TestDaemon};

/// Whether `ts` is RFC 3339 in UTC with nine fractional digits
/// (`2006-01-02T15:04:05.999999999Z`).
fn is_rfc3339_nano(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 30
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..29)
        && b[29] == b'Z'
}

fn exit_code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_output_and_exits_with_its_code() {
    let d = daemon_with_busybox().await;

    let out = d.cli(&["run", "busybox", "echo", "hi"]);
    assert_eq!(ok(out), "hi\n");
    let out = d.cli(&["run", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(exit_code(&out), Some(3), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    // Standard error lines go to the CLI's standard error, in `run` and in `logs`.
    let out = d.cli(&[
        "run",
        "--name",
        "both",
        "busybox",
        "sh",
        "-c",
        "echo one; echo oops >&2; echo two",
    ]);
    assert_eq!(exit_code(&out), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");
    assert_eq!(stderr(&out), "oops\n");
    let out = d.cli(&["logs", "both"]);
    assert_eq!(exit_code(&out), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");
    assert_eq!(stderr(&out), "oops\n");
    let c = d.client();
    let streams: Vec<(String, String)> = log_lines(&c, "both")
        .await
        .into_iter()
        .map(|l| (l.stream, l.line))
        .collect();
    assert!(
        streams.contains(&("stderr".into(), "oops".into()))
            && streams.contains(&("stdout".into(), "one".into())),
        "{streams:?}"
    );

    // `-t`: each line after its RFC3339Nano time, in order.
    let out = d.cli(&["logs", "-t", "both"]);
    let text = stdout(&out);
    let mut times = Vec::new();
    for (line, want) in text.lines().zip(["one", "two"]) {
        let (ts, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(is_rfc3339_nano(ts), "timestamp {ts:?} in {text:?}");
        assert_eq!(rest, want);
        times.push(ts.to_string());
    }
    assert_eq!(times.len(), 2, "{text:?}");
    assert!(times[0] <= times[1], "{times:?}");
    let err = stderr(&out);
    let (ts, rest) = err.trim_end().split_once(' ').expect("a stderr line");
    assert!(is_rfc3339_nano(ts) && rest == "oops", "{err:?}");

    // `--tail`.
    ok(d.cli(&[
        "run",
        "--name",
        "abc",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b; echo c",
    ]));
    assert_eq!(ok(d.cli(&["logs", "--tail", "1", "abc"])), "c\n");
    assert_eq!(ok(d.cli(&["logs", "--tail", "2", "abc"])), "b\nc\n");
    assert_eq!(ok(d.cli(&["logs", "--tail", "all", "abc"])), "a\nb\nc\n");

    // Every run is listed as exited with its code.
    let list = c.containers("default", "").await.unwrap().containers;
    assert_eq!(list.len(), 4);
    let mut codes: Vec<Option<i32>> = list
        .iter()
        .map(|v| {
            assert_eq!(v.status, "stopped", "{v:#?}");
            v.exit.as_ref().and_then(|e| e.code)
        })
        .collect();
    codes.sort();
    assert_eq!(codes, [Some(0), Some(0), Some(0), Some(3)]);
    // Stopped containers cost no process: their shims are let go.
    poll(
        "the shims of stopped containers to exit",
        STATUS_TIMEOUT,
        || async { shim_processes(d.state()).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_kills_after_the_timeout() {
    let d = daemon_with_busybox().await;
    let c = d.client();

    // Ignores SIGTERM: killed once the timeout has passed.
    let stubborn = run(
        &c,
        &sh("trap '' TERM; echo ready; while true; do sleep 1; done"),
    )
    .await;
    let id = stubborn.id.as_str();
    wait_log_line(&c, id, "ready").await;
    let mut events = c.events("topic=container.exited", None).await.unwrap();
    let t0 = Instant::now();
    ok(d.cli(&["stop", "-t", "1", id]));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "stop -t 1 took {took:?}"
    );
    assert_eq!(ok(d.cli(&["wait", id])), "137\n");
    let m = next_event(&mut events).await;
    let e = m.envelope().unwrap();
    assert_eq!(e.event["id"], id);
    assert_eq!(e.event["exit"]["code"], 137, "{}", m.data);
    assert_eq!(e.event["exit"]["signal"], 9, "{}", m.data);
    let v = get(&c, id).await;
    assert_eq!(v.status, "stopped");
    assert!(!pid_alive(stubborn.pid.unwrap()));

    // A process that ends at SIGTERM stops at once.
    let polite = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &polite.id, "ready").await;
    let t0 = Instant::now();
    ok(d.cli(&["stop", &polite.id]));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(ok(d.cli(&["wait", &polite.id])), "143\n");
    let m = next_event(&mut events).await;
    let e = m.envelope().unwrap();
    assert_eq!(e.event["id"], polite.id.as_str());
    assert_eq!(e.event["exit"]["code"], 143, "{}", m.data);
    assert_eq!(
        e.event["exit"]["signal"],
        serde_json::Value::Null,
        "{}",
        m.data
    );

    // `sleep` as the container's pid 1 has no SIGTERM handler, so the kernel ignores
    // the signal (as under Docker): the stop ends with SIGKILL after the timeout.
    let sleeper = run(&c, &berth_tests::containers::req(&["sleep", "1000"])).await;
    let t0 = Instant::now();
    ok(d.cli(&["stop", "-t", "1", &sleeper.id]));
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(ok(d.cli(&["wait", &sleeper.id])), "137\n");
}

/// The cgroup file holding the memory limit, v1 or v2, as the container sees it.
const READ_MEMORY_LIMIT: &str = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null \
     || cat /sys/fs/cgroup/memory.max";

/// Forks sleepers in a subshell until fork fails, then reads the pids count without
/// forking (`read` is a builtin).
const FORK_BOMB: &str = "( i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; \
     echo spawned ); f=/sys/fs/cgroup/pids/pids.current; [ -e $f ] || \
     f=/sys/fs/cgroup/pids.current; read n < $f; echo \"pids $n\"";

#[tokio::test(flavor = "multi_thread")]
async fn limits_and_mounts_are_in_force_inside() {
    let d = daemon_with_busybox().await;

    let out = d.cli(&[
        "run",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        READ_MEMORY_LIMIT,
    ]);
    assert_eq!(ok(out), "67108864\n");

    let out = d.cli(&[
        "run",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        FORK_BOMB,
    ]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(exit_code(&out), Some(0), "stdout {text:?} stderr {err:?}");
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "no fork failure: stdout {text:?} stderr {err:?}"
    );
    let n: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("pids "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pids count in {text:?}"));
    assert!(n <= 20, "{n} processes with --pids-limit 20");

    // Docker's default capabilities.
    let out = d.cli(&["run", "busybox", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(ok(out), "CapEff:\t00000000a80425fb\n");

    // A read-only rootfs, and a tmpfs on it.
    let out = d.cli(&["run", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(exit_code(&out), Some(0));
    assert!(stderr(&out).contains("Read-only file system"), "{out:?}");
    let out = d.cli(&[
        "run",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/x && echo ok",
    ]);
    assert_eq!(ok(out), "ok\n");

    // Bind mounts, read-only and read-write.
    let ro = d.dir().join("host-ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("hello.txt"), "from host\n").unwrap();
    let vol = format!("{}:/data:ro", ro.display());
    let out = d.cli(&[
        "run",
        "-v",
        &vol,
        "busybox",
        "sh",
        "-c",
        "cat /data/hello.txt; echo x > /data/new",
    ]);
    assert_ne!(exit_code(&out), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "from host\n");
    assert!(stderr(&out).contains("Read-only file system"), "{out:?}");
    assert!(!ro.join("new").exists());
    let rw = d.dir().join("host-rw");
    std::fs::create_dir(&rw).unwrap();
    let vol = format!("{}:/rw", rw.display());
    let out = d.cli(&[
        "run",
        "-v",
        &vol,
        "busybox",
        "sh",
        "-c",
        "echo inside > /rw/made",
    ]);
    ok(out);
    assert_eq!(
        std::fs::read_to_string(rw.join("made")).unwrap(),
        "inside\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_pause_ps_and_rm() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let v = run(&c, &sh(STOPPABLE)).await;
    let id = v.id.as_str();
    wait_log_line(&c, id, "ready").await;

    // exec: output and exit code, through the CLI and the API.
    let out = d.cli(&["exec", id, "sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!(exit_code(&out), Some(4));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let r = c
        .exec(
            "default",
            id,
            &ExecRequestBody {
                cmd: vec!["cat".into(), "/etc/hostname".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout, format!("{}\n", &id[..12]));

    // pause: frozen, no exec (exec needs a running container); unpause: back.
    ok(d.cli(&["pause", id]));
    assert_eq!(get(&c, id).await.status, "paused");
    assert!(cgroup_frozen(id), "paused but not frozen");
    let exec = |cmd: &[&str]| ExecRequestBody {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let (status, kind, message) = api_error(c.exec("default", id, &exec(&["true"])).await);
    assert_eq!((status, kind.as_str()), (409, "FailedPrecondition"));
    assert!(message.contains("paused"), "{message}");
    fails_with_1("exec in a paused container", d.cli(&["exec", id, "true"]));
    ok(d.cli(&["unpause", id]));
    assert_eq!(get(&c, id).await.status, "running");
    assert!(!cgroup_frozen(id), "running but frozen");
    assert_eq!(
        c.exec("default", id, &exec(&["echo", "back"]))
            .await
            .unwrap()
            .stdout,
        "back\n"
    );

    // A paused container stops at its stop signal (thawed to act on it), and `rm -f`
    // removes a paused one.
    let frozen = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &frozen.id, "ready").await;
    ok(d.cli(&["pause", &frozen.id]));
    let t0 = Instant::now();
    ok(d.cli(&["stop", &frozen.id]));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(ok(d.cli(&["wait", &frozen.id])), "143\n");
    let frozen2 = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &frozen2.id, "ready").await;
    ok(d.cli(&["pause", &frozen2.id]));
    ok(d.cli(&["rm", "-f", &frozen.id, &frozen2.id]));
    assert!(
        !pid_alive(frozen2.pid.unwrap()),
        "rm -f left a paused process"
    );
    for f in [&frozen, &frozen2] {
        assert!(!d.state().join("containers").join(&f.id).exists());
        assert!(cgroup_dirs(&f.id).is_empty(), "{:?}", cgroup_dirs(&f.id));
    }

    // ps: running only; -a: all.
    let done = d.cli(&["run", "--name", "done", "busybox", "true"]);
    ok(done);
    let done_id = get(&c, "done").await.id;
    assert_eq!(ok(d.cli(&["ps", "-q"])), format!("{}\n", &id[..12]));
    let all = ok(d.cli(&["ps", "-a", "-q"]));
    let mut all: Vec<&str> = all.lines().collect();
    all.sort();
    let mut want = vec![&id[..12], &done_id[..12]];
    want.sort();
    assert_eq!(all, want);
    let table = ok(d.cli(&["ps", "-a"]));
    assert!(table.contains("exited (0)"), "{table}");
    assert!(table.contains("running"), "{table}");

    // exec in a stopped container is refused.
    let (status, kind, message) = api_error(c.exec("default", "done", &exec(&["true"])).await);
    assert_eq!((status, kind.as_str()), (409, "FailedPrecondition"));
    assert!(message.contains("stopped"), "{message}");

    // rm of a running container needs -f.
    let (status, _, message) = api_error(c.delete_container("default", id, false).await);
    assert_eq!(status, 409, "{message}");
    let line = fails_with_1("rm of a running container", d.cli(&["rm", id]));
    assert!(line.contains(id), "{line}");
    assert_eq!(get(&c, id).await.status, "running");
    let bundle = d.state().join("containers").join(id);
    assert!(bundle.join("rootfs").is_dir());
    ok(d.cli(&["rm", "-f", id, "done"]));
    let (status, _, _) = api_error(c.container("default", id).await);
    assert_eq!(status, 404);
    assert!(
        !pid_alive(v.pid.unwrap()),
        "the container's process survived rm -f"
    );
    assert!(!pid_alive(v.shim_pid.unwrap()), "the shim survived rm -f");
    assert_nothing_left(&d, &[id, &done_id]);
    assert!(!d.root().join("containers").join(id).exists());
    let snaps = snapshots(&c, "default").await;
    assert!(
        snaps.iter().all(|s| !s.key.starts_with("container-")),
        "{snaps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_emits_its_events_in_order() {
    let d = daemon_with_busybox().await;
    let c = d.client();
    let mut events = c.events("topic=container.", None).await.unwrap();
    assert_eq!(ok(d.cli(&["run", "busybox", "echo", "sse"])), "sse\n");
    let mut topics = Vec::new();
    let mut id = None;
    // On the default (bridge) network: attached before it starts, detached after it exits.
    while topics.last().map(String::as_str) != Some("container.network_detached") {
        let m = next_event(&mut events).await;
        let e = m.envelope().unwrap();
        let this = e.event["id"].as_str().expect("a container id").to_string();
        assert_eq!(id.get_or_insert_with(|| this.clone()), &this);
        assert_eq!(m.event.as_deref(), Some(e.topic.as_str()));
        topics.push(e.topic);
    }
    assert_eq!(
        topics,
        [
            "container.create_requested",
            "container.created",
            "container.start_requested",
            "container.network_attach_requested",
            "container.network_attached",
            "container.started",
            "container.exited",
            "container.network_detached"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn created_container_survives_a_restart_and_rm_removes_its_logs() {
    let mut d = daemon_with_busybox().await;
    let c = d.client();
    let id = ok(d.cli(&[
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo later",
    ]));
    let id = id.trim().to_string();
    assert_eq!(get(&c, "later").await.status, "created");

    d.kill_9();
    d.restart();
    let v = get(&c, "later").await;
    assert_eq!(v.status, "created");
    assert_eq!(v.id, id);
    ok(d.cli(&["start", "later"]));
    assert_eq!(ok(d.cli(&["wait", "later"])), "0\n");
    assert_eq!(ok(d.cli(&["logs", "later"])), "later\n");

    let logs = d.root().join("containers").join(&id);
    assert!(logs.join("container.log").is_file());
    ok(d.cli(&["rm", "later"]));
    assert!(!logs.exists(), "{} was not removed", logs.display());
    assert_nothing_left(&d, &[&id]);
    let line = fails_with_1("rm of a removed container", d.cli(&["rm", "later"]));
    assert!(line.contains("later"), "{line}");
}

/// What a daemon's drop guard must remove, whether the daemon is alive (it is asked to
/// delete) or was killed (by hand).
async fn drop_guard_cleans_up(kill_first: bool) {
    let mut d = daemon_with_busybox().await;
    let c = d.client();
    let v = run(&c, &sh(STOPPABLE)).await;
    let paused = run(&c, &sh(STOPPABLE)).await;
    wait_log_line(&c, &paused.id, "ready").await;
    c.container_verb("default", &paused.id, "pause", "")
        .await
        .unwrap();
    let dir = d.dir().to_path_buf();
    let state = d.state().to_path_buf();
    assert_eq!(shim_processes(&state).len(), 2);
    assert!(!mounts_under(&dir).is_empty());
    if kill_first {
        d.kill_9();
    }
    drop(d);
    let pids = [
        v.pid.unwrap(),
        v.shim_pid.unwrap(),
        paused.pid.unwrap(),
        paused.shim_pid.unwrap(),
    ];
    for pid in pids {
        assert!(!pid_alive(pid), "{pid} survived the drop guard");
    }
    assert!(shim_processes(&state).is_empty());
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    for id in [&v.id, &paused.id] {
        assert!(cgroup_dirs(id).is_empty(), "{:?}", cgroup_dirs(id));
    }
    assert!(!Path::new(&dir).exists());
    // Their network is released too (CNI DEL): no masquerade rule names them.
    let nat = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .expect("iptables-save");
    let nat = String::from_utf8_lossy(&nat.stdout);
    for id in [&v.id, &paused.id] {
        assert!(!nat.contains(id.as_str()), "rules of {id} left:\n{nat}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn harness_cleans_up_containers_of_a_live_daemon() {
    drop_guard_cleans_up(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn harness_cleans_up_containers_of_a_killed_daemon() {
    drop_guard_cleans_up(true).await;
}

/// `Leftovers` sees a fresh daemon as clean (the checks above are not vacuous: they
/// are the same functions that found the shims and mounts before the drop).
#[test]
fn leftovers_of_a_fresh_daemon() {
    let d = TestDaemon::start();
    assert!(Leftovers::of(&d).is_empty(), "{:#?}", Leftovers::of(&d));
}

/// A reboot empties the state directory (a tmpfs in production): bundles, shim
/// sockets, exit records, the runtime's state and the rootfs mounts are gone. The
/// journal still knows the containers; starting one makes its bundle again.
#[tokio::test(flavor = "multi_thread")]
async fn containers_start_again_after_the_state_directory_is_lost() {
    let mut d = daemon_with_busybox().await;
    let c = d.client();
    let created = ok(d.cli(&["create", "--name", "fresh", "busybox", "echo", "fresh"]));
    let created = created.trim().to_string();
    let ran = run(&c, &sh("echo first")).await;
    assert_eq!(ok(d.cli(&["wait", &ran.id])), "0\n");

    // "Reboot": the daemon stops, the volatile state goes.
    d.terminate();
    for m in mounts_under(d.state()) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&m)
            .status();
    }
    std::fs::remove_dir_all(d.state().join("containers")).unwrap();
    let _ = std::fs::remove_dir_all(d.state().join("runc"));
    d.restart();

    ok(d.cli(&["start", "fresh"]));
    assert_eq!(ok(d.cli(&["wait", "fresh"])), "0\n");
    assert_eq!(ok(d.cli(&["logs", "fresh"])), "fresh\n");
    ok(d.cli(&["start", &ran.id]));
    assert_eq!(ok(d.cli(&["wait", &ran.id])), "0\n");
    assert_eq!(ok(d.cli(&["logs", &ran.id])), "first\nfirst\n");
    ok(d.cli(&["rm", "fresh", &ran.id]));
    assert_nothing_left(&d, &[&created, &ran.id]);
}
