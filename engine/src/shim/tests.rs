//! The shim's library without a container: configuration and exit files, cgroup
//! parsing, readiness lines, and the client's view of missing, stale and silent
//! shims. The real thing (runc, the binary) is tested in `tools/shim/tests`.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::cgroup::{locate, oom_kills};
use super::launch::Readiness;
use super::proto::{Request, Response};
use super::{read_exit_file, write_durable, ShimClient, ShimConfig, ShimError};
use crate::container::ExitStatus;
use crate::{EngineError, ErrorKind};

fn config(bundle: &Path) -> ShimConfig {
    ShimConfig {
        id: "0123456789abcdef0123456789abcdef".into(),
        bundle: bundle.to_path_buf(),
        runtime: "runc".into(),
        runtime_root: bundle.join("runc"),
        socket: bundle.join("shim.sock"),
        exit_file: bundle.join("exit.json"),
        log_path: bundle.join("container.log"),
        log_max_size: 1 << 20,
        log_max_files: 2,
        start: false,
    }
}

#[test]
fn configuration_saves_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    c.save().unwrap();
    assert_eq!(ShimConfig::load(dir.path()).unwrap(), c);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("shim.json")]);

    let missing = ShimConfig::load(&dir.path().join("nope")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    std::fs::write(dir.path().join("shim.json"), b"{").unwrap();
    let bad = ShimConfig::load(dir.path()).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument, "{bad}");
}

#[test]
fn a_configuration_without_start_leaves_the_container_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.start = true;
    c.save().unwrap();
    assert!(ShimConfig::load(dir.path()).unwrap().start);
    // Written by an older berthd: no `start`.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shim.json")).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("start");
    std::fs::write(dir.path().join("shim.json"), json.to_string()).unwrap();
    assert!(!ShimConfig::load(dir.path()).unwrap().start);
}

#[test]
fn exit_files_round_trip_and_bad_ones_read_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.json");
    assert_eq!(read_exit_file(&path), None);
    let exit = ExitStatus {
        code: Some(137),
        signal: Some(9),
        oom_killed: true,
        at: Utc::now(),
    };
    write_durable(&path, &serde_json::to_vec(&exit).unwrap()).unwrap();
    assert_eq!(read_exit_file(&path), Some(exit));
    std::fs::write(&path, b"{\"code\":").unwrap();
    assert_eq!(read_exit_file(&path), None);
}

const MOUNTINFO_HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:17 - cgroup cgroup rw,cpu,cpuacct
";

#[test]
fn the_memory_cgroup_is_found_on_hybrid_v1_and_v2_hosts() {
    let cgroups =
        "4:memory:/berth/default/c1\n1:cpu,cpuacct:/berth/default/c1\n0::/berth/default/c1\n";
    let found: Vec<_> = locate(cgroups, MOUNTINFO_HYBRID)
        .into_iter()
        .map(|c| c.file().to_path_buf())
        .collect();
    assert_eq!(
        found,
        vec![
            Path::new("/sys/fs/cgroup/memory/berth/default/c1/memory.oom_control").to_path_buf(),
            Path::new("/sys/fs/cgroup/unified/berth/default/c1/memory.events").to_path_buf(),
        ]
    );

    let v2 = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    let found: Vec<_> = locate("0::/berth/default/c1\n", v2)
        .into_iter()
        .map(|c| c.file().to_path_buf())
        .collect();
    assert_eq!(
        found,
        vec![Path::new("/sys/fs/cgroup/berth/default/c1/memory.events").to_path_buf()]
    );

    // Inside a cgroup namespace the mount's root is the namespace's root.
    let nested = "25 1 0:22 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let found: Vec<_> = locate("0::/outer/c1\n", nested)
        .into_iter()
        .map(|c| c.file().to_path_buf())
        .collect();
    assert_eq!(
        found,
        vec![Path::new("/sys/fs/cgroup/c1/memory.events").to_path_buf()]
    );

    assert!(locate("", MOUNTINFO_HYBRID).is_empty());
}

#[test]
fn oom_kill_counters_parse() {
    let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_eq!(oom_kills(v1), Some(3));
    let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_eq!(oom_kills(v2), Some(1));
    assert_eq!(oom_kills("oom 1\n"), None);
}

#[test]
fn readiness_lines_round_trip() {
    let ready = Readiness::Ready {
        shim_pid: 10,
        init_pid: 11,
    };
    let line = ready.to_line();
    assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    assert_eq!(serde_json::from_str::<Readiness>(&line).unwrap(), ready);
    let failed = Readiness::failed(&EngineError::InvalidArgument(
        "exec: \"x\" not found".into(),
    ));
    let parsed: Readiness = serde_json::from_str(&failed.to_line()).unwrap();
    assert_eq!(parsed, failed);
}

#[test]
fn a_missing_or_stale_socket_means_the_shim_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shim.sock");
    let err = ShimClient::new(&path)
        .request(&Request::State, Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(err.is_gone(), "{err}");

    let err = ShimClient::connect(&path).unwrap_err();
    assert!(err.is_gone(), "{err}");

    // A socket file nobody accepts on any more (its shim died).
    drop(UnixListener::bind(&path).unwrap());
    let client = ShimClient::connect(&path).unwrap();
    assert_eq!(client.socket(), path);
    let err = ShimClient::new(&path)
        .request(&Request::State, Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(err.is_gone(), "{err}");
    assert_eq!(EngineError::from(err).kind(), ErrorKind::Unavailable);
}

#[test]
fn a_silent_shim_times_out_and_a_closing_one_is_not_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shim.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = ShimClient::new(&path);
    let started = Instant::now();
    // The connection is queued in the backlog; nobody reads or answers.
    let err = client
        .request(&Request::State, Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(err, ShimError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        // The first, queued connection.
        drop(conn);
        let (mut conn, _) = listener.accept().unwrap();
        let req: Request = super::proto::read_frame(&mut conn).unwrap();
        assert_eq!(req, Request::Start);
        drop(conn);
        let (mut conn, _) = listener.accept().unwrap();
        let _: Request = super::proto::read_frame(&mut conn).unwrap();
        super::proto::write_frame(&mut conn, &Response::Ok).unwrap();
    });
    let err = client
        .request(&Request::Start, Some(Duration::from_secs(5)))
        .unwrap_err();
    assert!(matches!(err, ShimError::Closed { .. }), "{err}");
    assert!(!err.is_gone());
    assert_eq!(client.request(&Request::State, None).unwrap(), Response::Ok);
    server.join().unwrap();
}
