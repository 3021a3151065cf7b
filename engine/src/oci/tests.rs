//! Tests of spec generation. All but the last run without root; the last runs a
//! real container with runc when it can (root and runc present).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceType, LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompOperator, Spec,
};

use super::*;
use crate::container::{MountSpec, Resources, RestartPolicy};
use crate::ids::{Digest, ImageName};

fn image(run: serde_json::Value) -> crate::image::Config {
    let doc = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    crate::image::Config::parse(doc.to_string().as_bytes()).unwrap()
}

fn config() -> ContainerConfig {
    ContainerConfig {
        image: ImageName::parse("example.com/app:1").unwrap(),
        image_digest: Digest::of_bytes(b"manifest"),
        entrypoint: None,
        cmd: None,
        env: vec![],
        working_dir: None,
        user: None,
        hostname: None,
        labels: Default::default(),
        mounts: vec![],
        read_only: false,
        resources: Resources::default(),
        restart: RestartPolicy::No,
        runtime: "runc".into(),
        stop_timeout: 10,
        stop_signal: None,
        network: Default::default(),
        ports: Vec::new(),
    }
}

/// A rootfs with an `/etc/passwd` and `/etc/group`.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         # a comment\n\
         \n\
         broken line\n\
         bob:x:1000:1000:Bob:/home/bob:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\n\
         wheel:x:10:root,bob\n\
         staff:x:50:bob\n\
         bob:x:1000:\n\
         dup:x:10:bob\n\
         nogroup:x:65534:\n",
    )
    .unwrap();
    dir
}

struct Fixture {
    id: ContainerId,
    ns: NamespaceName,
    rootfs: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            id: ContainerId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            ns: NamespaceName::parse("prod").unwrap(),
            rootfs: rootfs(),
        }
    }

    fn inputs<'a>(
        &'a self,
        config: &'a ContainerConfig,
        image: &'a crate::image::Config,
    ) -> SpecInputs<'a> {
        SpecInputs {
            id: &self.id,
            namespace: &self.ns,
            config,
            image,
            rootfs: self.rootfs.path(),
            netns: None,
            host_network: false,
            etc_files: None,
        }
    }

    fn spec(&self, config: &ContainerConfig, image: &crate::image::Config) -> Spec {
        build(&self.inputs(config, image), false).unwrap()
    }
}

fn process(spec: &Spec) -> &Process {
    spec.process().as_ref().unwrap()
}

fn args(spec: &Spec) -> Vec<String> {
    process(spec).args().clone().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn invalid(r: Result<impl std::fmt::Debug, EngineError>) -> String {
    match r {
        Err(EngineError::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn args_follow_dockers_rules() {
    let f = Fixture::new();
    let img = image(serde_json::json!({"Entrypoint": ["/ep", "-x"], "Cmd": ["c1", "c2"]}));
    let mut c = config();
    assert_eq!(args(&f.spec(&c, &img)), strings(&["/ep", "-x", "c1", "c2"]));

    c.cmd = Some(strings(&["mine"]));
    assert_eq!(args(&f.spec(&c, &img)), strings(&["/ep", "-x", "mine"]));

    c.entrypoint = Some(strings(&["/other"]));
    assert_eq!(args(&f.spec(&c, &img)), strings(&["/other", "mine"]));

    // An entrypoint alone drops the image's cmd.
    c.cmd = None;
    assert_eq!(args(&f.spec(&c, &img)), strings(&["/other"]));

    // An empty entrypoint (`--entrypoint ""`) with a cmd runs the cmd alone.
    c.entrypoint = Some(vec![]);
    c.cmd = Some(strings(&["/bin/true"]));
    assert_eq!(args(&f.spec(&c, &img)), strings(&["/bin/true"]));

    let cmd_only = image(serde_json::json!({"Cmd": ["/bin/sh"]}));
    assert_eq!(args(&f.spec(&config(), &cmd_only)), strings(&["/bin/sh"]));

    let nothing = image(serde_json::json!({}));
    let m = invalid(build(&f.inputs(&config(), &nothing), false));
    assert_eq!(
        m,
        "no command: the image has no entrypoint or cmd and none was given"
    );
    c.entrypoint = Some(vec![]);
    c.cmd = None;
    invalid(build(&f.inputs(&c, &img), false));
}

#[test]
fn env_is_merged_by_key() {
    let f = Fixture::new();
    let img = image(serde_json::json!({
        "Cmd": ["x"],
        "Env": ["PATH=/img/bin", "A=1", "B=2"],
    }));
    let mut c = config();
    c.env = strings(&["B=3", "C=4", "A=one=1"]);
    let spec = f.spec(&c, &img);
    assert_eq!(
        process(&spec).env().clone().unwrap(),
        strings(&[
            "PATH=/img/bin",
            "HOSTNAME=0123456789ab",
            "A=one=1",
            "B=3",
            "C=4"
        ])
    );

    // No PATH in the image: the default; HOSTNAME follows the configured hostname
    // unless the environment sets it.
    let bare = image(serde_json::json!({"Cmd": ["x"]}));
    let mut c = config();
    c.hostname = Some("web".into());
    let env = process(&f.spec(&c, &bare)).env().clone().unwrap();
    assert_eq!(
        env,
        strings(&[&format!("PATH={DEFAULT_PATH}"), "HOSTNAME=web"])
    );
    c.env = strings(&["HOSTNAME=mine"]);
    let env = process(&f.spec(&c, &bare)).env().clone().unwrap();
    assert_eq!(env[1], "HOSTNAME=mine");

    c.env = strings(&["NOVALUE"]);
    assert!(invalid(build(&f.inputs(&c, &bare), false)).contains("\"NOVALUE\""));
    let bad_image = image(serde_json::json!({"Cmd": ["x"], "Env": ["=x"]}));
    assert!(invalid(build(&f.inputs(&config(), &bad_image), false)).contains("image"));
}

#[test]
fn cwd_and_hostname() {
    let f = Fixture::new();
    let img = image(serde_json::json!({"Cmd": ["x"], "WorkingDir": "/srv/app"}));
    let mut c = config();
    let spec = f.spec(&c, &img);
    assert_eq!(process(&spec).cwd(), Path::new("/srv/app"));
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));

    c.working_dir = Some("/work/".into());
    c.hostname = Some("box".into());
    let spec = f.spec(&c, &img);
    assert_eq!(process(&spec).cwd(), Path::new("/work"));
    assert_eq!(spec.hostname().as_deref(), Some("box"));

    let bare = image(serde_json::json!({"Cmd": ["x"]}));
    assert_eq!(process(&f.spec(&config(), &bare)).cwd(), Path::new("/"));
    let relative = image(serde_json::json!({"Cmd": ["x"], "WorkingDir": "app"}));
    assert_eq!(
        process(&f.spec(&config(), &relative)).cwd(),
        Path::new("/app")
    );

    c.working_dir = Some("rel".into());
    assert!(invalid(build(&f.inputs(&c, &img), false)).contains("\"rel\""));
}

#[test]
fn users_resolve_against_the_rootfs() {
    let dir = rootfs();
    let root = dir.path();
    for (user, want) in [
        (None, (0, 0, vec![10])),
        (Some(""), (0, 0, vec![10])),
        (Some("root"), (0, 0, vec![10])),
        (Some("0"), (0, 0, vec![10])),
        (Some("bob"), (1000, 1000, vec![10, 50])),
        (Some("1000"), (1000, 1000, vec![10, 50])),
        (Some("bob:staff"), (1000, 50, vec![])),
        (Some("bob:50"), (1000, 50, vec![])),
        (Some("bob:77"), (1000, 77, vec![])),
        (Some("1000:nogroup"), (1000, 65534, vec![])),
        (Some("daemon"), (1, 1, vec![])),
        (Some("2000"), (2000, 0, vec![])),
        (Some("2000:3000"), (2000, 3000, vec![])),
        (Some(":50"), (0, 50, vec![])),
    ] {
        assert_eq!(resolve_user(root, user).unwrap(), want, "{user:?}");
    }
    assert_eq!(
        invalid(resolve_user(root, Some("alice"))),
        "user \"alice\" not found in the image's /etc/passwd"
    );
    assert_eq!(
        invalid(resolve_user(root, Some("bob:admins"))),
        "group \"admins\" not found in the image's /etc/group"
    );
    assert!(invalid(resolve_user(root, Some("4294967296"))).contains("out of range"));
    assert!(invalid(resolve_user(root, Some("2147483648"))).contains("out of range"));
    assert!(invalid(resolve_user(root, Some("1:99999999999"))).contains("out of range"));

    // The user reaches the spec, with the image's user as the default.
    let f = Fixture {
        rootfs: dir,
        ..Fixture::new()
    };
    let img = image(serde_json::json!({"Cmd": ["x"], "User": "bob"}));
    let spec = f.spec(&config(), &img);
    let u = process(&spec).user();
    assert_eq!((u.uid(), u.gid()), (1000, 1000));
    assert_eq!(u.additional_gids().clone(), Some(vec![10, 50]));
    let mut c = config();
    c.user = Some("1000:staff".into());
    let u = process(&f.spec(&c, &img)).user().clone();
    assert_eq!(
        (u.uid(), u.gid(), u.additional_gids().clone()),
        (1000, 50, None)
    );
}

#[test]
fn users_without_passwd() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(resolve_user(dir.path(), None).unwrap(), (0, 0, vec![]));
    assert_eq!(
        resolve_user(dir.path(), Some("1234")).unwrap(),
        (1234, 0, vec![])
    );
    assert_eq!(
        resolve_user(dir.path(), Some("1234:5")).unwrap(),
        (1234, 5, vec![])
    );
    assert_eq!(
        invalid(resolve_user(dir.path(), Some("bob"))),
        "user \"bob\" not found: the image has no /etc/passwd"
    );
    assert!(invalid(resolve_user(dir.path(), Some("1:staff"))).contains("no /etc/group"));

    // /etc/passwd that is a directory is refused clearly.
    fs::create_dir_all(dir.path().join("etc/passwd")).unwrap();
    assert!(invalid(resolve_user(dir.path(), Some("bob"))).contains("not a regular file"));
}

#[test]
fn passwd_symlinks_stay_inside_the_rootfs() {
    let outside = tempfile::tempdir().unwrap();
    let host_passwd = outside.path().join("passwd");
    fs::write(&host_passwd, "bob:x:4242:4242::/:/bin/sh\n").unwrap();
    let host_group = outside.path().join("group");
    fs::write(&host_group, "evil:x:4343:bob\n").unwrap();

    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    // Absolute and relative links that would lead to the host's files if followed
    // from the host's root.
    symlink(&host_passwd, dir.path().join("etc/passwd")).unwrap();
    let up = "../".repeat(64);
    symlink(
        format!("{up}{}", host_group.display()),
        dir.path().join("etc/group"),
    )
    .unwrap();
    assert!(invalid(resolve_user(dir.path(), Some("bob"))).contains("no /etc/passwd"));
    assert_eq!(
        resolve_user(dir.path(), Some("1:evil")).map_err(|e| e.to_string()),
        Err("group \"evil\" not found: the image has no /etc/group".to_string())
    );

    // A link whose target exists inside the rootfs is followed there.
    fs::create_dir_all(dir.path().join(outside.path().strip_prefix("/").unwrap())).unwrap();
    fs::write(
        dir.path().join(host_passwd.strip_prefix("/").unwrap()),
        "bob:x:7:8::/:/bin/sh\n",
    )
    .unwrap();
    assert_eq!(
        resolve_user(dir.path(), Some("bob")).unwrap(),
        (7, 8, vec![])
    );
}

#[test]
fn capabilities_and_process_defaults() {
    let f = Fixture::new();
    let spec = f.spec(&config(), &image(serde_json::json!({"Cmd": ["x"]})));
    let p = process(&spec);
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.oom_score_adj(), None);
    let caps = p.capabilities().as_ref().unwrap();
    let want = capability_set(DEFAULT_CAPABILITIES).unwrap();
    assert_eq!(want.len(), 14);
    assert_eq!(caps.bounding().as_ref(), Some(&want));
    assert_eq!(caps.effective().as_ref(), Some(&want));
    assert_eq!(caps.permitted().as_ref(), Some(&want));
    assert!(caps.inheritable().as_ref().is_none_or(|c| c.is_empty()));
    assert!(caps.ambient().as_ref().is_none_or(|c| c.is_empty()));
    assert!(!want.contains(&Capability::SysAdmin));
    let rl = p.rlimits().as_ref().unwrap();
    assert_eq!(rl.len(), 1);
    assert_eq!(rl[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!(
        (rl[0].soft(), rl[0].hard()),
        (nofile_limit(), nofile_limit())
    );
    assert!(nofile_limit() <= NOFILE_LIMIT && nofile_limit() > 0);
    let spec = build_with(
        &f.inputs(&config(), &image(serde_json::json!({"Cmd": ["x"]}))),
        false,
        NOFILE_LIMIT,
    )
    .unwrap();
    let rl = process(&spec).rlimits().clone().unwrap();
    assert_eq!((rl[0].soft(), rl[0].hard()), (NOFILE_LIMIT, NOFILE_LIMIT));

    assert_eq!(spec.version(), OCI_VERSION);
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("rootfs"));
    assert_eq!(root.readonly(), Some(false));
    let mut c = config();
    c.read_only = true;
    let spec = f.spec(&c, &image(serde_json::json!({"Cmd": ["x"]})));
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
}

fn linux(spec: &Spec) -> &oci_spec::runtime::Linux {
    spec.linux().as_ref().unwrap()
}

#[test]
fn namespaces_paths_and_cgroup() {
    let f = Fixture::new();
    let c = config();
    let img = image(serde_json::json!({"Cmd": ["x"]}));
    let kinds = |spec: &Spec| -> Vec<LinuxNamespaceType> {
        linux(spec)
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect()
    };
    let v1 = build(&f.inputs(&c, &img), false).unwrap();
    assert_eq!(
        kinds(&v1),
        vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
        ]
    );
    assert!(linux(&v1)
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .all(|n| n.path().is_none()));
    let v2 = build(&f.inputs(&c, &img), true).unwrap();
    assert!(kinds(&v2).contains(&LinuxNamespaceType::Cgroup));
    assert_eq!(kinds(&v2).len(), 6);

    let netns = PathBuf::from("/run/berth/netns/abc");
    let mut inputs = f.inputs(&c, &img);
    inputs.netns = Some(&netns);
    let spec = build(&inputs, false).unwrap();
    let net = linux(&spec)
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .unwrap()
        .clone();
    assert_eq!(net.path().as_deref(), Some(netns.as_path()));
    // --network host: no network namespace at all (even with a path given).
    inputs.host_network = true;
    let spec = build(&inputs, false).unwrap();
    assert!(!kinds(&spec).contains(&LinuxNamespaceType::Network));
    assert_eq!(kinds(&spec).len(), 4);

    let l = linux(&v1);
    assert_eq!(l.masked_paths().clone().unwrap(), strings(MASKED_PATHS));
    for p in ["/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/scsi"] {
        assert!(l.masked_paths().as_ref().unwrap().iter().any(|m| m == p));
    }
    assert_eq!(
        l.readonly_paths().clone().unwrap(),
        strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ])
    );
    assert_eq!(
        l.cgroups_path().as_deref(),
        Some(Path::new("/berth/prod/0123456789abcdef0123456789abcdef"))
    );
    assert_eq!(
        cgroups_path(&f.ns, &f.id),
        "/berth/prod/0123456789abcdef0123456789abcdef"
    );
    // cgroup2_unified() answers without panicking wherever it runs.
    let _ = cgroup2_unified();
}

#[test]
fn resources_are_mapped() {
    let f = Fixture::new();
    let img = image(serde_json::json!({"Cmd": ["x"]}));
    let mut c = config();
    let r = linux(&f.spec(&c, &img)).resources().clone().unwrap();
    assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());

    c.resources = Resources {
        memory: Some(64 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(150_000),
        cpu_period: None,
        pids_limit: Some(100),
    };
    let r = linux(&f.spec(&c, &img)).resources().clone().unwrap();
    let mem = r.memory().unwrap();
    assert_eq!(mem.limit(), Some(64 << 20));
    assert_eq!(mem.swap(), None);
    let cpu = r.cpu().clone().unwrap();
    assert_eq!(cpu.shares(), Some(512));
    assert_eq!(cpu.quota(), Some(150_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(r.pids().unwrap().limit(), 100);

    c.resources = Resources {
        cpu_quota: Some(50_000),
        cpu_period: Some(50_000),
        ..Resources::default()
    };
    let r = linux(&f.spec(&c, &img)).resources().clone().unwrap();
    assert_eq!(r.cpu().as_ref().unwrap().period(), Some(50_000));

    // Devices: deny all first, then the standard ones.
    let devices = r.devices().clone().unwrap();
    assert!(!devices[0].allow());
    assert_eq!(devices[0].typ(), None);
    assert_eq!(devices[0].access().as_deref(), Some("rwm"));
    let allowed: Vec<String> = devices[1..]
        .iter()
        .inspect(|d| assert!(d.allow()))
        .map(|d| d.to_string())
        .collect();
    for want in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 5:0 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ] {
        assert!(allowed.iter().any(|a| a == want), "{want} in {allowed:?}");
    }
    assert!(devices[1..]
        .iter()
        .all(|d| matches!(d.typ(), Some(LinuxDeviceType::C | LinuxDeviceType::B))));
}

fn find<'a>(spec: &'a Spec, dest: &str) -> Vec<&'a Mount> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|m| m.destination() == Path::new(dest))
        .collect()
}

fn options(m: &Mount) -> Vec<String> {
    m.options().clone().unwrap_or_default()
}

#[test]
fn mounts_are_present_and_ordered() {
    let f = Fixture::new();
    let img = image(serde_json::json!({"Cmd": ["x"]}));
    let spec = f.spec(&config(), &img);
    let dests: Vec<&Path> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().as_path())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
        .map(Path::new)
    );
    let typ = |d: &str| find(&spec, d)[0].typ().clone().unwrap();
    assert_eq!(typ("/proc"), "proc");
    assert_eq!(typ("/dev/pts"), "devpts");
    assert_eq!(typ("/dev/mqueue"), "mqueue");
    assert_eq!(typ("/sys"), "sysfs");
    assert_eq!(typ("/sys/fs/cgroup"), "cgroup");
    assert_eq!(
        options(find(&spec, "/dev")[0]),
        strings(&["nosuid", "strictatime", "mode=755", "size=65536k"])
    );
    assert!(options(find(&spec, "/dev/pts")[0]).contains(&"newinstance".to_string()));
    assert!(options(find(&spec, "/dev/pts")[0]).contains(&"gid=5".to_string()));
    assert_eq!(
        options(find(&spec, "/dev/shm")[0]),
        strings(&["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])
    );
    assert!(options(find(&spec, "/sys")[0]).contains(&"ro".to_string()));
    assert!(options(find(&spec, "/sys/fs/cgroup")[0]).contains(&"ro".to_string()));

    // Etc files and user mounts.
    let mut c = config();
    c.read_only = true;
    c.mounts = vec![
        MountSpec {
            kind: MountKind::Bind,
            source: "/srv/data".into(),
            destination: "/data/deep/er".into(),
            readonly: true,
            options: vec!["nosuid".into()],
        },
        MountSpec {
            kind: MountKind::Tmpfs,
            source: String::new(),
            destination: "/dev/shm".into(),
            readonly: false,
            options: vec!["size=1g".into(), "exec".into()],
        },
        MountSpec {
            kind: MountKind::Bind,
            source: "/srv".into(),
            destination: "/data".into(),
            readonly: false,
            options: vec![],
        },
        MountSpec {
            kind: MountKind::Bind,
            source: "/my/resolv".into(),
            destination: "/etc/resolv.conf".into(),
            readonly: true,
            options: vec![],
        },
    ];
    let mut inputs = f.inputs(&c, &img);
    inputs.etc_files = Some(EtcFiles {
        hosts: "/b/hosts".into(),
        resolv_conf: "/b/resolv.conf".into(),
        hostname: "/b/hostname".into(),
    });
    let spec = build(&inputs, false).unwrap();
    let hosts = find(&spec, "/etc/hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].typ().as_deref(), Some("bind"));
    assert_eq!(hosts[0].source().as_deref(), Some(Path::new("/b/hosts")));
    assert_eq!(options(hosts[0]), strings(&["rbind", "rprivate", "ro"]));
    assert_eq!(
        find(&spec, "/etc/hostname")[0].source().as_deref(),
        Some(Path::new("/b/hostname"))
    );
    // The user's resolv.conf replaces berth's.
    let resolv = find(&spec, "/etc/resolv.conf");
    assert_eq!(resolv.len(), 1);
    assert_eq!(resolv[0].source().as_deref(), Some(Path::new("/my/resolv")));
    // The user's /dev/shm replaces the default one.
    let shm = find(&spec, "/dev/shm");
    assert_eq!(shm.len(), 1);
    assert_eq!(shm[0].typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(shm[0]),
        strings(&["noexec", "nosuid", "nodev", "size=1g", "exec"])
    );
    let deep = find(&spec, "/data/deep/er")[0];
    assert_eq!(deep.typ().as_deref(), Some("bind"));
    assert_eq!(deep.source().as_deref(), Some(Path::new("/srv/data")));
    assert_eq!(
        options(deep),
        strings(&["rbind", "rprivate", "ro", "nosuid"])
    );
    assert_eq!(
        options(find(&spec, "/data")[0]),
        strings(&["rbind", "rprivate", "rw"])
    );
    // Parents before children.
    let all: Vec<&Path> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().as_path())
        .collect();
    let pos = |d: &str| all.iter().position(|p| *p == Path::new(d)).unwrap();
    assert!(pos("/data") < pos("/data/deep/er"));
    assert!(pos("/dev") < pos("/dev/shm"));
    assert!(pos("/sys/fs/cgroup") < pos("/etc/hosts"));

    // A user mount on /dev covers the default ones below it.
    let mut c = config();
    c.mounts = vec![MountSpec {
        kind: MountKind::Bind,
        source: "/dev".into(),
        destination: "/dev".into(),
        readonly: false,
        options: vec![],
    }];
    let spec = f.spec(&c, &img);
    assert!(find(&spec, "/dev/pts").is_empty());
    assert!(find(&spec, "/dev/shm").is_empty());
    assert_eq!(find(&spec, "/dev").len(), 1);
    assert_eq!(find(&spec, "/proc").len(), 1);
}

fn rules_for<'a>(
    seccomp: &'a oci_spec::runtime::LinuxSeccomp,
    name: &str,
) -> Vec<&'a oci_spec::runtime::LinuxSyscall> {
    seccomp
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|s| s.names().iter().any(|n| n == name))
        .collect()
}

#[test]
fn seccomp_allow_list() {
    let s = default_seccomp();
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(s.default_errno_ret(), Some(1));
    let arches = s.architectures().clone().unwrap();
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            arches,
            vec![
                oci_spec::runtime::Arch::ScmpArchX86_64,
                oci_spec::runtime::Arch::ScmpArchX86,
                oci_spec::runtime::Arch::ScmpArchX32
            ]
        );
    }

    // Denied: nothing allows them.
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "pivot_root",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "open_by_handle_at",
        "name_to_handle_at",
        "userfaultfd",
        "lookup_dcookie",
        "quotactl",
        "sysfs",
        "_sysctl",
        "vm86",
        "uselib",
        "ustat",
        "nfsservctl",
        "iopl",
        "ioperm",
        "syslog",
        "mbind",
        "set_mempolicy",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "fsopen",
        "open_tree",
        "move_mount",
    ] {
        assert!(rules_for(&s, name).is_empty(), "{name} must not be allowed");
    }
    // Allowed unconditionally.
    for name in [
        "read",
        "write",
        "openat",
        "execve",
        "rseq",
        "statx",
        "faccessat2",
        "close_range",
        "pidfd_open",
        "pidfd_send_signal",
        "epoll_pwait2",
        "openat2",
        "copy_file_range",
        "getrandom",
        "membarrier",
        "futex_waitv",
        "set_robust_list",
        "prlimit64",
        "sched_getaffinity",
        "ptrace",
        "get_mempolicy",
        "wait4",
        "socket",
        "chroot",
    ] {
        let rules = rules_for(&s, name);
        assert_eq!(rules.len(), 1, "{name}");
        assert_eq!(
            rules[0].action(),
            LinuxSeccompAction::ScmpActAllow,
            "{name}"
        );
        assert!(rules[0].args().is_none(), "{name}");
    }
    // No duplicates in the list.
    let mut names = seccomp::ALLOWED.to_vec();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());

    // personality: only the usual personas.
    let values: Vec<u64> = rules_for(&s, "personality")
        .iter()
        .map(|r| {
            let a = r.args().as_ref().unwrap();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpEq);
            assert_eq!(a[0].index(), 0);
            a[0].value()
        })
        .collect();
    assert_eq!(values, vec![0, 8, 0x20000, 0x20008, 0xffff_ffff]);

    // clone: only without namespace flags.
    let clone = rules_for(&s, "clone");
    assert_eq!(clone.len(), 1);
    let a = clone[0].args().as_ref().unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(
        (a[0].index(), a[0].value(), a[0].value_two()),
        (0, 0x7E02_0000, Some(0))
    );
    // clone3: ENOSYS.
    let clone3 = rules_for(&s, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3[0].errno_ret(), Some(38));

    // In the spec, and serialised with the OCI names.
    let f = Fixture::new();
    let spec = f.spec(&config(), &image(serde_json::json!({"Cmd": ["x"]})));
    assert_eq!(linux(&spec).seccomp().as_ref(), Some(&s));
    let json = serde_json::to_value(&spec).unwrap();
    let sc = &json["linux"]["seccomp"];
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(sc["defaultErrnoRet"], 1);
    assert_eq!(sc["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
    let clone_json = sc["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["names"][0] == "clone")
        .unwrap();
    assert_eq!(clone_json["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone_json["args"][0]["value"], 2_114_060_288_u64);
    assert_eq!(clone_json["args"][0]["valueTwo"], 0);
}

#[test]
fn write_config_round_trips() {
    let f = Fixture::new();
    let mut c = config();
    c.resources.memory = Some(32 << 20);
    let spec = f.spec(
        &c,
        &image(serde_json::json!({"Cmd": ["x"], "Env": ["SECRET=1"]})),
    );
    let bundle = tempfile::tempdir().unwrap();
    write_config(bundle.path(), &spec).unwrap();
    let path = bundle.path().join("config.json");
    let loaded = Spec::load(&path).unwrap();
    assert_eq!(loaded, spec);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Rewriting replaces it; no temporary file is left behind.
    let mut other = spec.clone();
    other.set_hostname(Some("other".into()));
    fs::write(bundle.path().join(".config.json.tmp"), "stale").unwrap();
    write_config(bundle.path(), &other).unwrap();
    assert_eq!(
        Spec::load(&path).unwrap().hostname().as_deref(),
        Some("other")
    );
    let names: Vec<_> = fs::read_dir(bundle.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    // The JSON uses the runtime spec's field names.
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["ociVersion"], OCI_VERSION);
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["linux"]["cgroupsPath"], cgroups_path(&f.ns, &f.id));

    let missing = bundle.path().join("nope");
    let e = write_config(&missing, &spec).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn exec_process_inherits_and_overrides() {
    let f = Fixture::new();
    let mut c = config();
    c.user = Some("bob".into());
    c.env = strings(&["A=1", "B=2"]);
    let img = image(serde_json::json!({"Cmd": ["x"], "WorkingDir": "/app"}));
    let spec = f.spec(&c, &img);
    let base = process(&spec).clone();

    let req = ExecRequest {
        args: strings(&["ls", "-l"]),
        env: vec![],
        cwd: None,
        user: None,
    };
    let p = exec_process(&spec, &req).unwrap();
    assert_eq!(p.args().clone().unwrap(), strings(&["ls", "-l"]));
    assert_eq!(p.env(), base.env());
    assert_eq!(p.cwd(), Path::new("/app"));
    assert_eq!(p.user(), base.user());
    assert_eq!(p.user().additional_gids().clone(), Some(vec![10, 50]));
    assert_eq!(p.capabilities(), base.capabilities());
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.rlimits(), base.rlimits());
    assert_eq!(p.apparmor_profile(), base.apparmor_profile());
    assert_eq!(p.terminal(), Some(false));

    let req = ExecRequest {
        args: strings(&["env"]),
        env: strings(&["B=3", "C=4"]),
        cwd: Some("/tmp/".into()),
        user: Some((7, 8)),
    };
    let p = exec_process(&spec, &req).unwrap();
    let env = p.env().clone().unwrap();
    assert!(env.contains(&"A=1".to_string()));
    assert!(env.contains(&"B=3".to_string()));
    assert!(!env.contains(&"B=2".to_string()));
    assert_eq!(env.last().unwrap(), "C=4");
    assert_eq!(p.cwd(), Path::new("/tmp"));
    assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
    assert_eq!(p.user().additional_gids().clone(), None);
    assert_eq!(p.capabilities(), base.capabilities());

    let bad = |args: &[&str], env: &[&str], cwd: Option<&str>| {
        exec_process(
            &spec,
            &ExecRequest {
                args: strings(args),
                env: strings(env),
                cwd: cwd.map(String::from),
                user: None,
            },
        )
    };
    assert!(invalid(bad(&[], &[], None)).contains("command"));
    assert!(invalid(bad(&["x"], &["NOEQ"], None)).contains("\"NOEQ\""));
    assert!(invalid(bad(&["x"], &[], Some("rel"))).contains("\"rel\""));
    assert!(invalid(bad(&["a\0b"], &[], None)).contains("NUL"));

    let mut empty = spec.clone();
    empty.set_process(None);
    assert!(matches!(
        exec_process(&empty, &req),
        Err(EngineError::FailedPrecondition(_))
    ));
    // The serialised process is what `runc exec --process` reads.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["user"]["uid"], 7);
    assert_eq!(json["cwd"], "/tmp");
}

/// Runs a real container from a generated spec with runc: busybox in a temp rootfs,
/// checking the capabilities, seccomp mode, no-new-privileges and user the process
/// gets. Skipped (with a message) unless root with runc and busybox available.
#[test]
fn runc_runs_the_generated_spec() {
    let Some(runc) = which("runc") else {
        eprintln!("skipped: runc is not installed");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        eprintln!("skipped: /bin/busybox is not installed");
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "id", "grep", "unshare", "hostname", "true", "sleep", "ls",
    ] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    for (name, content) in [
        ("hosts", "127.0.0.1 localhost\n10.9.8.7 berth-test-host\n"),
        ("resolv.conf", "nameserver 10.9.8.1\n"),
        ("hostname", "berthbox\n"),
    ] {
        fs::write(bundle.join(name), content).unwrap();
    }

    let id = ContainerId::generate();
    // A namespace of this run alone, so its cgroup parent can be removed too.
    let ns = NamespaceName::parse(&format!("oci-test-{}", std::process::id())).unwrap();
    let mut c = config();
    c.hostname = Some("berthbox".into());
    c.entrypoint = Some(strings(&["/bin/sh", "-c"]));
    c.cmd = Some(strings(&[
        "cat /proc/self/status | grep -E '^(CapEff|Seccomp|NoNewPrivs):'; id; hostname; \
         grep berth-test-host /etc/hosts; cat /etc/resolv.conf; \
         if unshare -U true 2>/dev/null; then echo unshare=allowed; else echo unshare=denied; fi; \
         sleep 0.1 & wait $! && echo fork=ok; ls / >/dev/null && echo ls=ok",
    ]));
    c.resources.memory = Some(64 << 20);
    c.resources.pids_limit = Some(64);
    let img = image(serde_json::json!({}));
    let spec = generate(&SpecInputs {
        id: &id,
        namespace: &ns,
        config: &c,
        image: &img,
        rootfs: &rootfs,
        netns: None,
        host_network: false,
        etc_files: Some(EtcFiles {
            hosts: bundle.join("hosts"),
            resolv_conf: bundle.join("resolv.conf"),
            hostname: bundle.join("hostname"),
        }),
    })
    .unwrap();
    write_config(&bundle, &spec).unwrap();

    let state = tmp.path().join("runc");
    let guard = RuncGuard {
        runc: runc.clone(),
        root: state.clone(),
        id: id.to_string(),
        cgroup: cgroups_path(&ns, &id),
    };
    let child = std::process::Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(id.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_deadline(child, std::time::Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("container output:\n{stdout}");
    assert!(
        out.status.success(),
        "runc run failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = |prefix: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{stdout}\nstderr:\n{stderr}"))
            .to_string()
    };
    assert_eq!(
        line("CapEff:").split_whitespace().nth(1),
        Some("00000000a80425fb")
    );
    assert_eq!(line("Seccomp:").split_whitespace().nth(1), Some("2"));
    assert_eq!(line("NoNewPrivs:").split_whitespace().nth(1), Some("1"));
    assert!(
        line("uid=").starts_with("uid=0(root) gid=0(root)"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "berthbox"), "{stdout}");
    assert!(stdout.contains("10.9.8.7 berth-test-host"), "{stdout}");
    assert!(stdout.contains("nameserver 10.9.8.1"), "{stdout}");
    assert!(stdout.contains("unshare=denied"), "{stdout}");
    assert!(stdout.contains("fork=ok"), "{stdout}");
    assert!(stdout.contains("ls=ok"), "{stdout}");
    drop(guard);
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Waits for `child`, killing it (by its pid) if it outlives `limit`.
fn wait_with_deadline(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::Read as _;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!("runc did not finish within {limit:?} ({status:?})");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Deletes the test's runc container and its cgroup directories, even on failure.
struct RuncGuard {
    runc: PathBuf,
    root: PathBuf,
    id: String,
    cgroup: String,
}

impl Drop for RuncGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.runc)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let rel = self.cgroup.trim_start_matches('/');
        let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                dirs.push(e.path().join(rel));
            }
        }
        for d in dirs {
            // The container's own cgroup and this run's namespace parent; `/berth`
            // is shared and stays.
            let _ = fs::remove_dir(&d);
            if let Some(parent) = d.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
    }
}
