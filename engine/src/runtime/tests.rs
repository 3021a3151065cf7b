//! The runc driver: message classification without runc, and the real thing (as root,
//! with runc installed) against a busybox bundle.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::runc::classify;
use super::{ProcessIo, Runc, Runtime, RuntimeStatus};
use crate::{EngineError, ErrorKind};

#[test]
fn statuses_parse_and_print() {
    for s in [
        "creating", "created", "running", "paused", "stopped", "weird",
    ] {
        assert_eq!(RuntimeStatus::parse(s).as_str(), s);
    }
    assert_eq!(
        RuntimeStatus::parse("weird"),
        RuntimeStatus::Unknown("weird".into())
    );
}

#[test]
fn runtime_messages_are_classified() {
    let kind = |verb, msg| classify("runc", verb, "c1", msg).kind();
    assert_eq!(
        kind("state", "container does not exist"),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind("kill", "container not running"),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        kind(
            "create",
            "runc create failed: unable to start container process: exec: \"nope\": \
             executable file not found in $PATH"
        ),
        ErrorKind::InvalidArgument
    );
    assert_eq!(kind("start", "something broke"), ErrorKind::Internal);
    let e = classify("runc", "kill", "c1", "container not running");
    assert_eq!(e.to_string(), "runc kill c1: container not running");
}

#[test]
fn a_missing_binary_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let runc = Runc::new("berth-no-such-runtime", dir.path().join("root"));
    let err = runc.state("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let runc = Runc::new(dir.path().join("nope"), dir.path().join("root"));
    let err = runc.start("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// Test support shared with the shim's tests in this crate.
pub(crate) mod support {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Why the real-runc tests cannot run here, if they cannot.
    pub(crate) fn skip_reason() -> Option<String> {
        if !nix::unistd::geteuid().is_root() {
            return Some("not root".into());
        }
        let found = Command::new("runc").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Some("runc is not installed".into());
        }
        if !Path::new("/bin/busybox").exists() {
            return Some("/bin/busybox is missing".into());
        }
        None
    }

    /// A random suffix.
    pub(crate) fn random_hex() -> String {
        crate::container::ContainerId::generate().as_str()[..16].to_string()
    }

    /// A busybox root filesystem at `rootfs`.
    pub(crate) fn busybox_rootfs(rootfs: &Path) {
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "sleep", "true", "false", "id", "yes", "head", "tail", "ls",
            "kill", "ps",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    }

    /// A bundle at `dir` (`runc spec`, patched): busybox rootfs, no terminal, `args`,
    /// cgroups under `/berth-test/<cgroup>`.
    pub(crate) fn bundle(dir: &Path, args: &[&str], cgroup: &str) -> PathBuf {
        busybox_rootfs(&dir.join("rootfs"));
        let out = Command::new("runc")
            .arg("spec")
            .arg("--bundle")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "runc spec: {out:?}");
        let path = dir.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = args
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .into();
        spec["linux"]["cgroupsPath"] = format!("/berth-test/{cgroup}").into();
        fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        dir.to_path_buf()
    }

    /// Removes `/berth-test/<cgroup>` from every cgroup hierarchy (and `/berth-test`
    /// when it is left empty).
    pub(crate) fn remove_cgroup(cgroup: &str) {
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split(' ').next().unwrap_or_default();
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            let Some(mountpoint) = left.split(' ').nth(4) else {
                continue;
            };
            let parent = Path::new(mountpoint).join("berth-test");
            let _ = fs::remove_dir(parent.join(cgroup));
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Deletes the container and its cgroups, whatever happened.
struct Cleanup<'a> {
    runc: &'a Runc,
    id: String,
    cgroup: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.runc.delete(&self.id, true);
        support::remove_cgroup(&self.cgroup);
    }
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (std::fs::File::from(r), w)
}

/// Pipes for a process's stdout and stderr, drained on threads.
fn captured() -> (ProcessIo, std::thread::JoinHandle<(String, String)>) {
    let (mut out_r, out_w) = pipe();
    let (mut err_r, err_w) = pipe();
    let drain = std::thread::spawn(move || {
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            err_r.read_to_string(&mut s).unwrap();
            s
        });
        let mut out = String::new();
        out_r.read_to_string(&mut out).unwrap();
        (out, err.join().unwrap())
    });
    (
        ProcessIo {
            stdout: out_w,
            stderr: err_w,
        },
        drain,
    )
}

fn write_process(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
    });
    std::fs::write(&path, serde_json::to_vec(&process).unwrap()).unwrap();
    path
}

fn wait_for_status(runc: &Runc, id: &str, want: &RuntimeStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = runc.state(id).unwrap();
        if state.as_ref().map(|s| &s.status) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {want}: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runc_runs_a_container_through_its_life() {
    if let Some(why) = support::skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cgroup = support::random_hex();
    let id = format!("berth-rt-{cgroup}");
    let bundle = support::bundle(
        &tmp.path().join("bundle"),
        &["sh", "-c", "echo started; trap '' TERM; sleep 100"],
        &cgroup,
    );
    let runc = Runc::new("runc", tmp.path().join("state")).with_log_dir(tmp.path());
    let _cleanup = Cleanup {
        runc: &runc,
        id: id.clone(),
        cgroup: cgroup.clone(),
    };

    assert_eq!(runc.state(&id).unwrap(), None);
    assert!(runc.list().unwrap().is_empty());

    let (io, logs) = captured();
    let pid_file = tmp.path().join("init.pid");
    runc.create(&id, &bundle, &pid_file, io).unwrap();
    let state = runc.state(&id).unwrap().unwrap();
    assert_eq!(state.status, RuntimeStatus::Created);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(state.pid, Some(pid));
    assert_eq!(state.bundle, bundle);
    let err = runc
        .create(&id, &bundle, &pid_file, captured().0)
        .unwrap_err();
    assert!(err.to_string().contains(&id), "{err}");

    runc.start(&id).unwrap();
    wait_for_status(&runc, &id, &RuntimeStatus::Running);
    assert_eq!(runc.list().unwrap().len(), 1);

    let (io, out) = captured();
    let code = runc.exec(
        &id,
        &write_process(tmp.path(), "p1.json", &["echo", "inside"]),
        io,
    );
    assert_eq!(code.unwrap(), 0);
    assert_eq!(out.join().unwrap().0, "inside\n");
    let (io, _) = captured();
    let code = runc.exec(
        &id,
        &write_process(tmp.path(), "p2.json", &["sh", "-c", "exit 4"]),
        io,
    );
    assert_eq!(code.unwrap(), 4);
    let (io, _) = captured();
    let err = runc
        .exec(
            &id,
            &write_process(tmp.path(), "p3.json", &["no-such-binary"]),
            io,
        )
        .unwrap_err();
    assert!(err.to_string().contains("no-such-binary"), "{err}");

    runc.pause(&id).unwrap();
    wait_for_status(&runc, &id, &RuntimeStatus::Paused);
    runc.resume(&id).unwrap();
    wait_for_status(&runc, &id, &RuntimeStatus::Running);

    // TERM is ignored; KILL is not.
    runc.kill(&id, 15, false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        runc.state(&id).unwrap().unwrap().status,
        RuntimeStatus::Running
    );
    runc.kill(&id, 9, true).unwrap();
    wait_for_status(&runc, &id, &RuntimeStatus::Stopped);
    assert_eq!(runc.state(&id).unwrap().unwrap().pid, None);
    let err = runc.kill(&id, 9, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert_eq!(logs.join().unwrap().0, "started\n");

    runc.delete(&id, false).unwrap();
    assert_eq!(runc.state(&id).unwrap(), None);
    assert!(runc.list().unwrap().is_empty());
    let err = runc.delete(&id, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[test]
fn runc_reports_why_create_failed_and_force_deletes_a_running_container() {
    if let Some(why) = support::skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cgroup = support::random_hex();
    let runc = Runc::new("runc", tmp.path().join("state")).with_log_dir(tmp.path());

    let bad = format!("berth-rt-bad-{cgroup}");
    let _bad_cleanup = Cleanup {
        runc: &runc,
        id: bad.clone(),
        cgroup: format!("{cgroup}-bad"),
    };
    let bundle = support::bundle(
        &tmp.path().join("bad"),
        &["/bin/no-such-binary"],
        &format!("{cgroup}-bad"),
    );
    let err = runc
        .create(&bad, &bundle, &tmp.path().join("bad.pid"), captured().0)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no-such-binary"), "{msg}");
    assert!(matches!(err, EngineError::InvalidArgument(_)), "{err:?}");
    let _ = runc.delete(&bad, true);
    assert_eq!(runc.state(&bad).unwrap(), None);

    let id = format!("berth-rt-{cgroup}");
    let _cleanup = Cleanup {
        runc: &runc,
        id: id.clone(),
        cgroup: cgroup.clone(),
    };
    let bundle = support::bundle(&tmp.path().join("good"), &["sleep", "100"], &cgroup);
    runc.create(&id, &bundle, &tmp.path().join("good.pid"), captured().0)
        .unwrap();
    runc.start(&id).unwrap();
    wait_for_status(&runc, &id, &RuntimeStatus::Running);
    runc.delete(&id, true).unwrap();
    assert_eq!(runc.state(&id).unwrap(), None);
}
