//! berth-shim with real runc and busybox containers (as root; skipped with a message
//! otherwise). Every test cleans up after itself, also when it fails: a Drop guard shuts
//! the shim down (force), kills by pid only the shim it launched, deletes the runtime's
//! state and removes the test's cgroups.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_engine::container::{ContainerConfig, ContainerId, ExitStatus, Resources, RestartPolicy};
use berth_engine::ids::{Digest, ImageName, NamespaceName};
use berth_engine::shim::proto::{ExecOutput, ExecRequest, Request, Response, ShimStatus};
use berth_engine::shim::{launch, read_exit_file, ShimClient, ShimConfig};
use berth_engine::{oci, EngineError};

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root");
    }
    if !Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("runc is not installed");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox is missing");
    }
    None
}

macro_rules! require_root_and_runc {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn busybox_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "sleep", "true", "false", "id", "yes", "head", "tail", "ls",
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

fn image_config() -> berth_engine::image::Config {
    let doc = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    berth_engine::image::Config::parse(doc.to_string().as_bytes()).unwrap()
}

/// Removes `/berth-test/<cgroup>` in every cgroup hierarchy, and `/berth-test` if it is
/// left empty.
fn remove_cgroup(cgroup: &str) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(right.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        if let Some(mountpoint) = left.split(' ').nth(4) {
            let parent = Path::new(mountpoint).join("berth-test");
            let _ = fs::remove_dir(parent.join(cgroup));
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// One container and its shim, cleaned up when dropped.
struct Container {
    /// Removed last, after the shim and the runtime's state are gone.
    _tmp: tempfile::TempDir,
    config: ShimConfig,
    cgroup: String,
    shim_pid: Option<u32>,
}

impl Container {
    fn new(args: &[&str], memory: Option<i64>) -> Container {
        let tmp = tempfile::tempdir().unwrap();
        let id = ContainerId::generate();
        let cgroup = id.as_str()[..16].to_string();
        let bundle = tmp.path().join("bundle");
        busybox_rootfs(&bundle.join("rootfs"));
        let config = ContainerConfig {
            image: ImageName::parse("busybox:latest").unwrap(),
            image_digest: Digest::of_bytes(b"manifest"),
            entrypoint: Some(args.iter().map(|a| a.to_string()).collect()),
            cmd: None,
            env: vec![],
            working_dir: None,
            user: None,
            hostname: None,
            labels: Default::default(),
            mounts: vec![],
            read_only: false,
            resources: Resources {
                memory,
                ..Resources::default()
            },
            restart: RestartPolicy::No,
            runtime: "runc".into(),
            stop_timeout: 10,
            stop_signal: None,
            network: Default::default(),
            ports: Vec::new(),
        };
        let image = image_config();
        let namespace = NamespaceName::parse("default").unwrap();
        let mut spec = oci::generate(&oci::SpecInputs {
            id: &id,
            namespace: &namespace,
            config: &config,
            image: &image,
            rootfs: &bundle.join("rootfs"),
            netns: None,
            host_network: false,
            etc_files: None,
        })
        .unwrap();
        if let Some(linux) = spec.linux_mut() {
            linux.set_cgroups_path(Some(PathBuf::from(format!("/berth-test/{cgroup}"))));
        }
        oci::write_config(&bundle, &spec).unwrap();
        let config = ShimConfig {
            id: id.to_string(),
            bundle: bundle.clone(),
            runtime: "runc".into(),
            runtime_root: tmp.path().join("runc"),
            socket: bundle.join("shim.sock"),
            exit_file: bundle.join("exit.json"),
            log_path: tmp.path().join("logs/container.log"),
            log_max_size: 1 << 20,
            log_max_files: 2,
            start: false,
        };
        Container {
            _tmp: tmp,
            config,
            cgroup,
            shim_pid: None,
        }
    }

    fn launch(&mut self) -> Result<u32, EngineError> {
        let pid = launch(Path::new(SHIM), &self.config)?.shim_pid;
        self.shim_pid = Some(pid);
        Ok(pid)
    }

    fn started(args: &[&str]) -> Container {
        let mut c = Container::new(args, None);
        c.launch().unwrap();
        assert_eq!(c.request(&Request::Start), Response::Ok);
        c
    }

    fn request(&self, req: &Request) -> Response {
        ShimClient::new(&self.config.socket)
            .request(req, TIMEOUT)
            .unwrap()
    }

    fn status(&self) -> ShimStatus {
        match self.request(&Request::State) {
            Response::State(s) => s.status,
            other => panic!("state: {other:?}"),
        }
    }

    fn wait(&self) -> ExitStatus {
        match self.request(&Request::Wait) {
            Response::Exited(e) => e,
            other => panic!("wait: {other:?}"),
        }
    }

    fn exec(&self, args: &[&str]) -> ExecOutput {
        let req = Request::Exec(ExecRequest {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![],
            cwd: None,
            user: None,
        });
        match self.request(&req) {
            Response::Exec(out) => out,
            other => panic!("exec {args:?}: {other:?}"),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.config.log_path).unwrap_or_default()
    }

    fn runc_knows_it(&self) -> bool {
        Command::new("runc")
            .arg("--root")
            .arg(&self.config.runtime_root)
            .arg("state")
            .arg(&self.config.id)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// The shim's resident memory, as /proc tells it.
    fn print_rss(&self, when: &str) {
        let pid = self.shim_pid.unwrap();
        let rss = status_field(pid, "VmRSS:").unwrap_or_default();
        let threads = status_field(pid, "Threads:").unwrap_or_default();
        println!("shim {pid} {when}: VmRSS {rss}, {threads} threads");
    }

    /// Shuts the shim down (`force`) and checks that it is gone with everything it had.
    fn shutdown(&self, force: bool) {
        assert_eq!(self.request(&Request::Shutdown { force }), Response::Ok);
        let pid = self.shim_pid.unwrap();
        wait_until("the shim to exit", Duration::from_secs(10), || exited(pid));
        assert!(!self.config.socket.exists());
        assert!(!self.runc_knows_it());
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = fs::read_to_string(self.config.bundle.join("shim.log")).unwrap_or_default();
            eprintln!("shim.log of the failed test:\n{log}");
        }
        if self.config.socket.exists() {
            let _ = ShimClient::new(&self.config.socket).request(
                &Request::Shutdown { force: true },
                Some(Duration::from_secs(20)),
            );
        }
        if let Some(pid) = self.shim_pid {
            // Only our shim: its command line names our bundle.
            let ours = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&*self.config.bundle.to_string_lossy())
            });
            if ours && !exited(pid) {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.config.runtime_root)
            .args(["delete", "--force", &self.config.id])
            .output();
        remove_cgroup(&self.cgroup);
    }
}

#[test]
fn started_at_launch_when_the_configuration_says_so() {
    require_root_and_runc!();
    let mut c = Container::new(&["sh", "-c", "echo hi; echo oops >&2; exit 3"], None);
    c.config.start = true;
    let launched = launch(Path::new(SHIM), &c.config).unwrap();
    c.shim_pid = Some(launched.shim_pid);
    assert!(launched.init_pid > 0);
    // Started already (`runc run --detach`): a Start is refused.
    match c.request(&Request::Start) {
        Response::Error { code, .. } => {
            assert!(code == "already_started" || code == "not_running", "{code}")
        }
        other => panic!("{other:?}"),
    }
    let exit = c.wait();
    assert_eq!(exit.code, Some(3));
    let log = c.log();
    assert!(log.contains(" stdout F hi"), "{log}");
    assert!(log.contains(" stderr F oops"), "{log}");
    assert_eq!(read_exit_file(&c.config.exit_file), Some(exit));
    c.shutdown(false);
}

#[test]
fn echo_hi_is_logged_and_exits_0() {
    require_root_and_runc!();
    let mut c = Container::new(&["echo", "hi"], None);
    let pid = c.launch().unwrap();
    // The shim is not our child: it was re-parented when `berth-shim start` exited.
    let ppid: u32 = status_field(pid, "PPid:").unwrap().parse().unwrap();
    assert_ne!(ppid, std::process::id());
    assert!(c.config.socket.exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&c.config.socket).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    match c.request(&Request::State) {
        Response::State(s) => {
            assert_eq!(s.status, ShimStatus::Created);
            assert_eq!(s.shim_pid, pid);
            assert!(s.pid > 0);
            assert_eq!(s.exit, None);
        }
        other => panic!("{other:?}"),
    }
    c.print_rss("created");
    assert_eq!(c.request(&Request::Start), Response::Ok);
    let exit = c.wait();
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (Some(0), None, false)
    );
    let log = c.log();
    assert!(log.lines().any(|l| l.ends_with(" stdout F hi")), "{log}");
    assert_eq!(read_exit_file(&c.config.exit_file), Some(exit.clone()));
    assert_eq!(c.status(), ShimStatus::Stopped);
    // A second wait is answered at once, with the same exit.
    assert_eq!(c.wait(), exit);
    c.print_rss("exited");

    let not_running =
        |r: Response| matches!(r, Response::Error { code, .. } if code == "not_running");
    assert!(not_running(c.request(&Request::Start)));
    assert!(not_running(c.request(&Request::Kill {
        signal: 15,
        all: false
    })));
    c.shutdown(false);
    // The exit stays for the daemon to read.
    assert_eq!(read_exit_file(&c.config.exit_file), Some(exit));
}

#[test]
fn stderr_is_logged_and_the_exit_code_kept() {
    require_root_and_runc!();
    let c = Container::started(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let exit = c.wait();
    assert_eq!((exit.code, exit.signal), (Some(3), None));
    let log = c.log();
    assert!(log.lines().any(|l| l.ends_with(" stderr F err")), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" stdout F out")), "{log}");
    c.shutdown(false);
}

#[test]
fn term_can_be_ignored_but_kill_cannot() {
    require_root_and_runc!();
    let c = Container::started(&["sh", "-c", "trap '' TERM; echo ready; sleep 100"]);
    wait_until("the trap", Duration::from_secs(10), || {
        c.log().contains("stdout F ready")
    });
    c.print_rss("running");
    let socket = c.config.socket.clone();
    let waiter = std::thread::spawn(move || ShimClient::new(socket).request(&Request::Wait, None));

    assert!(matches!(
        c.request(&Request::Start),
        Response::Error { code, .. } if code == "already_started"
    ));
    assert!(matches!(
        c.request(&Request::Shutdown { force: false }),
        Response::Error { code, .. } if code == "running"
    ));
    assert_eq!(
        c.request(&Request::Kill {
            signal: 15,
            all: false
        }),
        Response::Ok
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.status(), ShimStatus::Running);
    assert_eq!(
        c.request(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    let exit = match waiter.join().unwrap().unwrap() {
        Response::Exited(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (Some(137), Some(9), false)
    );
    assert_eq!(read_exit_file(&c.config.exit_file), Some(exit));
    c.shutdown(false);
}

#[test]
fn exec_pause_resume_and_forced_shutdown() {
    require_root_and_runc!();
    let c = Container::started(&["sleep", "100"]);
    let out = c.exec(&["echo", "inside"]);
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout, b"inside\n");
    assert!(out.stderr.is_empty() && !out.truncated);
    assert_eq!(c.exec(&["false"]).exit_code, 1);
    let out = c.exec(&["sh", "-c", "echo oops >&2; exit 5"]);
    assert_eq!((out.exit_code, out.stderr.as_slice()), (5, &b"oops\n"[..]));
    match c.request(&Request::Exec(ExecRequest {
        args: vec!["no-such-binary".into()],
        env: vec![],
        cwd: None,
        user: None,
    })) {
        Response::Error { message, .. } => assert!(message.contains("no-such-binary"), "{message}"),
        other => panic!("{other:?}"),
    }
    c.print_rss("after 4 execs");

    assert_eq!(c.request(&Request::Pause), Response::Ok);
    assert_eq!(c.status(), ShimStatus::Paused);
    assert!(matches!(
        c.request(&Request::Exec(ExecRequest {
            args: vec!["true".into()],
            env: vec![],
            cwd: None,
            user: None,
        })),
        Response::Error { code, .. } if code == "not_running"
    ));
    assert_eq!(c.request(&Request::Resume), Response::Ok);
    assert_eq!(c.status(), ShimStatus::Running);
    assert_eq!(c.exec(&["true"]).exit_code, 0);

    c.shutdown(true);
    let exit = read_exit_file(&c.config.exit_file).expect("exit recorded");
    assert_eq!((exit.code, exit.signal), (Some(137), Some(9)));
}

#[test]
fn a_paused_container_is_shut_down_by_force() {
    require_root_and_runc!();
    let c = Container::started(&["sleep", "100"]);
    assert_eq!(c.request(&Request::Pause), Response::Ok);
    assert!(matches!(
        c.request(&Request::Shutdown { force: false }),
        Response::Error { code, .. } if code == "running"
    ));
    c.shutdown(true);
    assert!(read_exit_file(&c.config.exit_file).is_some());
}

#[test]
fn the_shim_outlives_its_launcher() {
    require_root_and_runc!();
    let mut c = Container::new(&["sleep", "100"], None);
    c.config.save().unwrap();
    // What `launch` does, by hand: the launcher is a process of ours that exits.
    let mut launcher = Command::new(SHIM)
        .arg("start")
        .arg(&c.config.bundle)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let launcher_pid = launcher.id();
    let status = launcher.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut launcher.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    let ready: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ready["status"], "ready", "{out}");
    let pid = u32::try_from(ready["shim_pid"].as_u64().unwrap()).unwrap();
    c.shim_pid = Some(pid);
    assert!(!exited(pid));
    let ppid: u32 = status_field(pid, "PPid:").unwrap().parse().unwrap();
    assert_ne!(ppid, launcher_pid);
    assert_ne!(ppid, std::process::id());
    // Its own session, away from ours.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(
        i32::try_from(pid).unwrap(),
    )))
    .unwrap();
    assert_eq!(sid.as_raw(), i32::try_from(pid).unwrap());
    assert_eq!(c.request(&Request::Start), Response::Ok);
    assert_eq!(c.status(), ShimStatus::Running);
    c.shutdown(true);
}

#[test]
fn a_bad_bundle_fails_with_the_runtimes_message_and_leaves_nothing() {
    require_root_and_runc!();
    let mut c = Container::new(&["/bin/no-such-binary"], None);
    let err = c.launch().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no-such-binary"), "{msg}");
    assert!(!c.config.socket.exists());
    assert!(!c.runc_knows_it());
    // No process of ours is left with the bundle on its command line.
    let bundle = c.config.bundle.to_string_lossy().into_owned();
    let left: Vec<_> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !exited(*pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&bundle))
        })
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    let shim_log = fs::read_to_string(c.config.bundle.join("shim.log")).unwrap_or_default();
    println!("shim.log:\n{shim_log}");
}

/// Whether this host's cgroups can tell an OOM kill (a v1 memory controller, or v2
/// with the memory controller enabled at the root).
fn oom_detectable() -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let options = right.nth(1).unwrap_or_default();
        if fstype == "cgroup" && options.split(',').any(|o| o == "memory") {
            return Ok(());
        }
        if fstype == "cgroup2" {
            let mountpoint = left.split(' ').nth(4).unwrap_or_default();
            let controllers =
                fs::read_to_string(Path::new(mountpoint).join("cgroup.subtree_control"))
                    .unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok(());
            }
        }
    }
    Err("no memory cgroup controller is available".into())
}

/// A container that eats memory under a 16 MiB limit, or `None` (with the reason
/// printed) where an OOM kill cannot be detected.
fn memory_eater() -> Option<Container> {
    if let Err(why) = oom_detectable() {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(Container::new(
        &["sh", "-c", "x=a; while true; do x=\"$x$x\"; done"],
        Some(16 << 20),
    ))
}

/// Waits for `c` to die of the OOM killer, reported as such, then lets it go.
fn assert_oom_killed(c: Container) {
    let exit = c.wait();
    assert_eq!((exit.code, exit.signal), (Some(137), Some(9)), "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
    c.shutdown(false);
}

#[test]
fn an_oom_kill_is_reported_when_started_at_launch() {
    require_root_and_runc!();
    let Some(mut c) = memory_eater() else { return };
    // Killed at once: the init may be gone before the shim reads its cgroup.
    c.config.start = true;
    c.shim_pid = Some(launch(Path::new(SHIM), &c.config).unwrap().shim_pid);
    assert_oom_killed(c);
}

#[test]
fn an_oom_kill_is_reported() {
    require_root_and_runc!();
    let Some(mut c) = memory_eater() else { return };
    c.launch().unwrap();
    assert_eq!(c.request(&Request::Start), Response::Ok);
    assert_oom_killed(c);
}
