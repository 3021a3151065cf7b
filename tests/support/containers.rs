//! Containers in end-to-end tests: the busybox image, create requests, polling for a
//! status or a log line, the processes, mounts and cgroups a daemon's containers leave
//! behind — and removing them, which [`TestDaemon`]'s drop guard does (containers'
//! shims outlive berthd by design).
//!
//! Cleanup touches only what belongs to one daemon: shims whose command line names a
//! bundle under its `--state`, runtime containers in its `<state>/runc` root, cgroups
//! named after its containers' ids (random, so unique), mounts under its temporary
//! directory. Other tests' processes are never signalled.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_http::api::types::{ContainerView, CreateContainerRequest, LogLine};
use berth_http::client::{Client, ClientError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::storage::{build_image, import, mounts_under, Format, ImageKind};
use crate::TestDaemon;

/// The name the test image is imported under (`docker.io/library/busybox:latest`).
pub const BUSYBOX: &str = "busybox";

/// How long a test waits for a container to reach a status.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the busybox test image into the daemon's directory and imports it as
/// [`BUSYBOX`] into namespace `default`.
pub async fn import_busybox(d: &TestDaemon) {
    let (file, _) = build_image(
        d.dir(),
        ImageKind::Busybox,
        Format::OciArchive,
        Some(BUSYBOX),
    );
    import(&d.client(), &file, "").await;
}

/// A daemon with the busybox image imported.
pub async fn daemon_with_busybox() -> TestDaemon {
    let d = TestDaemon::start();
    import_busybox(&d).await;
    d
}

/// A create request for [`BUSYBOX`] running `cmd`.
pub fn req(cmd: &[&str]) -> CreateContainerRequest {
    CreateContainerRequest {
        image: BUSYBOX.into(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// A request for `sh -c <script>`.
pub fn sh(script: &str) -> CreateContainerRequest {
    req(&["sh", "-c", script])
}

/// A shell that runs until stopped, exiting 143 at SIGTERM (`sh` is the container's
/// pid 1, which the kernel spares the default action of SIGTERM: without a trap it
/// would ignore it). Prints `ready` once the trap is set.
pub const STOPPABLE: &str = "trap 'exit 143' TERM; echo ready; sleep 1000 & wait";

/// Creates and starts a container; panics on failure. Returns it as started.
pub async fn run(c: &Client, r: &CreateContainerRequest) -> ContainerView {
    let created = c
        .create_container("default", r)
        .await
        .unwrap_or_else(|e| panic!("creating {r:?}: {e}"));
    let id = created.container.id;
    c.container_verb("default", &id, "start", "")
        .await
        .unwrap_or_else(|e| panic!("starting {id}: {e}"))
        .container
}

/// `GET /v1/containers/{key}` in `default`; panics on failure.
pub async fn get(c: &Client, key: &str) -> ContainerView {
    c.container("default", key)
        .await
        .unwrap_or_else(|e| panic!("inspecting {key}: {e}"))
}

/// Polls `f` every 20 ms until it returns `Some`; panics with `what` after `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until container `key` has `status`; returns it then.
pub async fn wait_status(c: &Client, key: &str, status: &str) -> ContainerView {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let v = get(c, key).await;
        if v.status == status {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("container {key} is not {status} within {STATUS_TIMEOUT:?}: {v:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every log line of `key` (both streams, in file order).
pub async fn log_lines(c: &Client, key: &str) -> Vec<LogLine> {
    let mut s = c
        .container_logs("default", key, "format=json")
        .await
        .unwrap_or_else(|e| panic!("logs of {key}: {e}"));
    let mut out = Vec::new();
    while let Some(l) = s.next_json::<LogLine>().await {
        out.push(l.unwrap_or_else(|e| panic!("logs of {key}: {e}")));
    }
    out
}

/// The text of `key`'s log lines.
pub async fn log_texts(c: &Client, key: &str) -> Vec<String> {
    log_lines(c, key)
        .await
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Waits until `key`'s log has a line equal to `line`.
pub async fn wait_log_line(c: &Client, key: &str, line: &str) {
    poll(
        &format!("line {line:?} in the log of {key}"),
        STATUS_TIMEOUT,
        || async {
            log_texts(c, key)
                .await
                .iter()
                .any(|l| l == line)
                .then_some(())
        },
    )
    .await
}

/// The API error of `res`: `(status, kind, message)`; panics on success.
#[track_caller]
pub fn api_error<T: std::fmt::Debug>(res: Result<T, ClientError>) -> (u16, String, String) {
    match res {
        Err(ClientError::Api {
            status,
            kind,
            message,
        }) => (status, kind, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

// ---- processes ----

/// The state letter of `/proc/<pid>/stat`, if the process exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: comm may hold spaces and parentheses; the state follows the
    // last `)`.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Whether `pid` runs (exists and is neither a zombie nor dead).
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Live `berth-shim start|serve <bundle>` processes whose bundle is under
/// `<state>/containers/`: `(pid, bundle)`.
pub fn shim_processes(state: &Path) -> Vec<(u32, PathBuf)> {
    let prefix = state.join("containers");
    all_pids()
        .into_iter()
        .filter(|pid| pid_alive(*pid))
        .filter_map(|pid| {
            let args = cmdline(pid)?;
            let is_shim = args
                .first()
                .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "berth-shim"))
                && matches!(args.get(1).map(String::as_str), Some("serve" | "start"));
            let bundle = PathBuf::from(args.get(2)?);
            (is_shim && bundle.starts_with(&prefix)).then_some((pid, bundle))
        })
        .collect()
}

fn send_kill(pid: u32) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// Sends SIGKILL to `pid` (a process this test started or owns).
pub fn sigkill(pid: u32) {
    let p = i32::try_from(pid).expect("pids fit in i32");
    kill(Pid::from_raw(p), Signal::SIGKILL).unwrap_or_else(|e| panic!("killing {pid}: {e}"));
}

/// Waits (blocking) until none of `pids` runs; false after `timeout`.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|p| pid_alive(*p)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

// ---- what containers leave ----

/// Names of the entries of `dir` (none when it does not exist).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Container ids with a bundle under `<state>/containers`.
pub fn bundle_ids(state: &Path) -> Vec<String> {
    dir_entries(&state.join("containers"))
        .into_iter()
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// Container ids the runtime has state for under `<state>/runc`.
pub fn runtime_ids(state: &Path) -> Vec<String> {
    dir_entries(&state.join("runc"))
}

/// The cgroup directories of container `id` that exist: `/sys/fs/cgroup/<controller>/
/// berth/<ns>/<id>` (v1, and the hybrid unified tree) and `/sys/fs/cgroup/berth/<ns>/
/// <id>` (v2).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.join("berth")];
    bases.extend(dir_entries(root).iter().map(|c| root.join(c).join("berth")));
    let mut out = Vec::new();
    for base in bases {
        for ns in dir_entries(&base) {
            let dir = base.join(ns).join(id);
            if dir.is_dir() {
                out.push(dir);
            }
        }
    }
    out
}

/// Whether container `id`'s cgroup is frozen: v1 `freezer.state` is `FROZEN`, or v2
/// `cgroup.events` says `frozen 1`. Panics when neither file exists.
pub fn cgroup_frozen(id: &str) -> bool {
    let dirs = cgroup_dirs(id);
    for dir in &dirs {
        if let Ok(state) = std::fs::read_to_string(dir.join("freezer.state")) {
            return state.trim() == "FROZEN";
        }
    }
    for dir in &dirs {
        if let Ok(events) = std::fs::read_to_string(dir.join("cgroup.events")) {
            if events.lines().any(|l| l.starts_with("frozen ")) {
                return events.lines().any(|l| l.trim() == "frozen 1");
            }
        }
    }
    panic!("no freezer state for container {id} in {dirs:?}");
}

/// Everything a daemon's containers left: for assertions after a deletion.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Shim processes of this state directory.
    pub shims: Vec<(u32, PathBuf)>,
    /// Mount points under the daemon's temporary directory.
    pub mounts: Vec<String>,
    /// Bundles.
    pub bundles: Vec<String>,
    /// Runtime state directories.
    pub runtime: Vec<String>,
    /// Anything else (bridges).
    pub other: Vec<String>,
}

impl Leftovers {
    /// What `d`'s containers left.
    pub fn of(d: &TestDaemon) -> Leftovers {
        Leftovers::under(d.dir(), d.state())
    }

    fn under(dir: &Path, state: &Path) -> Leftovers {
        Leftovers {
            shims: shim_processes(state),
            mounts: mounts_under(dir),
            bundles: bundle_ids(state),
            runtime: runtime_ids(state),
            other: Vec::new(),
        }
    }

    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        self == &Leftovers::default()
    }
}

/// Asserts that `d`'s containers left nothing: no shim, no mount, no bundle, no
/// runtime state, and no cgroup of any of `ids`.
#[track_caller]
pub fn assert_nothing_left(d: &TestDaemon, ids: &[&str]) {
    let l = Leftovers::of(d);
    assert!(l.is_empty(), "left behind: {l:#?}");
    for id in ids {
        let dirs = cgroup_dirs(id);
        assert!(dirs.is_empty(), "cgroups of {id} left: {dirs:?}");
    }
}

// ---- cleanup ----

/// `DELETE /v1/containers/{id}?namespace=&force=true` by hand (the drop guard may run
/// inside or outside a runtime); the status, if an answer came.
fn force_delete(socket: &Path, ns: &str, id: &str) -> Option<u16> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "DELETE /v1/containers/{id}?namespace={ns}&force=true HTTP/1.1\r\nHost: berthd\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// The namespace of bundle `id`, from the cgroup path of its `config.json`
/// (`/berth/<ns>/<id>`).
fn bundle_namespace(state: &Path, id: &str) -> String {
    let config = state.join("containers").join(id).join("config.json");
    std::fs::read(config)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(String::from))
        .and_then(|p| p.split('/').nth(2).map(String::from))
        .unwrap_or_else(|| "default".into())
}

/// Asks a live daemon to force-delete every container that has a bundle. Gives up
/// after about a minute in all.
pub(crate) fn delete_through_api(state: &Path, socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in bundle_ids(state) {
        if Instant::now() >= deadline {
            eprintln!("cleanup: giving up on deleting containers through the API");
            return;
        }
        let ns = bundle_namespace(state, &id);
        match force_delete(socket, &ns, &id) {
            Some(200 | 404) => {}
            other => eprintln!("cleanup: DELETE container {id} (namespace {ns}): {other:?}"),
        }
    }
}

/// `runc --root <state>/runc <args>`, output ignored; killed after 20 s. Never panics
/// (it runs in a drop guard, maybe while a test panics).
fn runc(state: &Path, args: &[&str]) {
    let child = Command::new("runc")
        .arg("--root")
        .arg(state.join("runc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("cleanup: cannot run runc {args:?}");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                eprintln!("cleanup: runc {args:?} hangs; killed");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Removes what a dead daemon's containers left: shims (SIGKILL), runtime containers
/// (`runc kill --all` + `delete --force`), processes left in their cgroups, mounts under
/// `dir`, cgroup directories. Returns what could not be removed.
pub(crate) fn force_cleanup(dir: &Path, state: &Path) -> Leftovers {
    let shims = shim_processes(state);
    let mut ids: Vec<String> = bundle_ids(state);
    ids.extend(runtime_ids(state));
    ids.extend(
        shims
            .iter()
            .filter_map(|(_, b)| b.file_name().map(|n| n.to_string_lossy().into_owned())),
    );
    ids.sort();
    ids.dedup();
    let shim_pids: Vec<u32> = shims.iter().map(|(p, _)| *p).collect();
    for pid in &shim_pids {
        send_kill(*pid);
    }
    for id in runtime_ids(state) {
        runc(state, &["kill", "--all", &id, "KILL"]);
        runc(state, &["delete", "--force", &id]);
    }
    // Whatever still runs in the containers' cgroups (their ids are this daemon's).
    let mut stray = Vec::new();
    for id in &ids {
        for cg in cgroup_dirs(id) {
            if let Ok(text) = std::fs::read_to_string(cg.join("cgroup.procs")) {
                stray.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
    }
    stray.sort_unstable();
    stray.dedup();
    for pid in &stray {
        send_kill(*pid);
    }
    let mut all: Vec<u32> = shim_pids;
    all.extend(&stray);
    if !wait_gone(&all, Duration::from_secs(10)) {
        eprintln!("cleanup: processes still alive after SIGKILL: {all:?}");
    }
    // Deepest mount points first.
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if let Err(e) = berth_engine::mount::unmount(Path::new(&m)) {
            eprintln!("cleanup: unmounting {m}: {e}");
        }
    }
    for id in &ids {
        for cg in cgroup_dirs(id) {
            // Emptied above; a cgroup may take a moment to let go of its last task.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(&cg).is_err() && cg.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if cg.exists() {
                eprintln!("cleanup: cannot remove cgroup {}", cg.display());
            }
        }
    }
    Leftovers {
        shims: shim_processes(state),
        mounts: mounts_under(dir),
        ..Default::default()
    }
}

/// Reads the lines of a CLI output stream.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Bridges whose name starts with `prefix`.
pub fn bridges_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("bridge").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !prefix.is_empty() && n.starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// `ip link del dev <name>`.
pub fn remove_link(name: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["link", "del", "dev", name])
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() || !Path::new("/sys/class/net").join(name).exists() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
