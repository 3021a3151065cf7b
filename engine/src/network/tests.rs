//! Tests of the network module: pure parsing without root; namespaces and the real CNI
//! plugins as root (skipped with a reason otherwise). The root tests touch only what
//! they create: a bridge `bt<pid><k>`, a free subnet `10.231.<x>.0/24`, namespaces and
//! IPAM state in temp dirs, and the iptables chains the plugins make for them; a
//! [`TestNet`] guard removes all of it, and restores `ip_forward`, even on failure.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cni::{Attachment, Cni, CniConfig, CniResult, ConfList, CNI_VERSION};
use super::*;
use crate::ErrorKind;

// ---------------------------------------------------------------- pure parts

#[test]
fn subnet_parses_and_refuses() {
    let s = Subnet::parse("10.88.0.0/16").unwrap();
    assert_eq!(s.network(), Ipv4Addr::new(10, 88, 0, 0));
    assert_eq!(s.prefix(), 16);
    assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
    assert_eq!(s.default_gateway(), Some(Ipv4Addr::new(10, 88, 0, 1)));
    assert_eq!(s.to_string(), "10.88.0.0/16");
    assert!(s.contains(Ipv4Addr::new(10, 88, 3, 4)));
    assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
    assert_eq!(
        Subnet::parse("0.0.0.0/0").unwrap().broadcast(),
        Ipv4Addr::BROADCAST
    );
    assert_eq!(
        Subnet::parse("10.0.0.7/32").unwrap().default_gateway(),
        None
    );
    assert_eq!(
        Subnet::parse("10.0.0.4/30").unwrap().default_gateway(),
        Some(Ipv4Addr::new(10, 0, 0, 5))
    );
    for bad in [
        "10.88.0.0",
        "10.88.0.1/16",
        "10.88.0.0/33",
        "10.88.0.0/",
        "10.88.0.0/+8",
        "10.300.0.0/16",
        "fd00::/64",
        "x/8",
        "",
    ] {
        let e = Subnet::parse(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        assert!(e.to_string().starts_with("invalid subnet"), "{e}");
    }
    assert!(Subnet::parse("10.88.0.1/16")
        .unwrap_err()
        .to_string()
        .contains("did you mean 10.88.0.0/16"));
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(json, "\"10.88.0.0/16\"");
    assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    assert!(serde_json::from_str::<Subnet>("\"10.88.0.1/16\"").is_err());
}

#[test]
fn subnets_overlap() {
    let p = |s: &str| Subnet::parse(s).unwrap();
    assert!(p("10.88.0.0/16").overlaps(&p("10.88.5.0/24")));
    assert!(p("10.88.5.0/24").overlaps(&p("10.88.0.0/16")));
    assert!(p("10.88.0.0/16").overlaps(&p("10.88.0.0/16")));
    assert!(!p("10.88.0.0/16").overlaps(&p("10.89.0.0/16")));
    assert!(!p("10.231.1.0/24").overlaps(&p("10.231.2.0/24")));
    assert!(p("0.0.0.0/0").overlaps(&p("192.168.1.0/24")));
    assert!(p("10.0.0.0/8").overlaps(&p("10.255.255.255/32")));
    assert!(!p("10.0.0.0/31").overlaps(&p("10.0.0.2/31")));
}

#[test]
fn publish_parses_and_refuses() {
    let m = parse_publish("18080:80").unwrap();
    assert_eq!(
        m,
        PortMapping {
            host_port: 18080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None
        }
    );
    assert_eq!(parse_publish("18080:80/tcp").unwrap(), m);
    let u = parse_publish("5353:53/udp").unwrap();
    assert_eq!(u.protocol, Protocol::Udp);
    let l = parse_publish("127.0.0.1:18080:80/tcp").unwrap();
    assert_eq!(l.host_ip, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(l.to_string(), "127.0.0.1:18080:80/tcp");
    assert_eq!(
        l.to_cni(),
        serde_json::json!({"hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"})
    );
    assert_eq!(m.to_cni().get("hostIP"), None);
    for bad in [
        "80",
        "0:80",
        "18080:0",
        "70000:80",
        "a:80",
        "18080:80/sctp",
        "1:2:3:4",
        "::1:80:80",
        "localhost:80:80",
        "18080:+80",
        "",
    ] {
        let e = parse_publish(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
        assert!(e.to_string().starts_with("invalid published port"), "{e}");
    }
    // Conflicts: same protocol and port, overlapping host addresses.
    assert!(m.conflicts(&l));
    assert!(!m.conflicts(&u));
    assert!(!l.conflicts(&parse_publish("10.0.0.1:18080:8080").unwrap()));
    assert!(!m.conflicts(&parse_publish("18081:80").unwrap()));
}

#[test]
fn network_config_renders_a_conflist() {
    let mut net = NetworkConfig::new("berth0", "berth0", Subnet::parse("10.88.0.0/16").unwrap());
    net.validate().unwrap();
    let list = net
        .to_conflist(CNI_VERSION, Path::new("/var/lib/berth/cni"))
        .unwrap();
    assert_eq!(list.cni_version, "1.0.0");
    assert_eq!(list.name, "berth0");
    let types: Vec<&str> = list
        .plugins
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bridge", "portmap"]);
    let b = &list.plugins[0];
    assert_eq!(b["bridge"], "berth0");
    assert_eq!(b["isGateway"], true);
    assert_eq!(b["ipMasq"], true);
    assert_eq!(b["hairpinMode"], true);
    assert_eq!(b["ipam"]["type"], "host-local");
    assert_eq!(b["ipam"]["dataDir"], "/var/lib/berth/cni");
    assert_eq!(b["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
    assert_eq!(b["ipam"]["ranges"][0][0]["gateway"], "10.88.0.1");
    assert_eq!(list.plugins[1]["capabilities"]["portMappings"], true);
    // Round trip through JSON.
    assert_eq!(ConfList::parse(&list.to_json()).unwrap(), list);

    net.portmap = false;
    net.gateway = Some(Ipv4Addr::new(10, 88, 0, 254));
    let list = net.to_conflist("0.4.0", Path::new("/x")).unwrap();
    assert_eq!(list.plugins.len(), 1);
    assert_eq!(
        list.plugins[0]["ipam"]["ranges"][0][0]["gateway"],
        "10.88.0.254"
    );

    for (gw, sub) in [
        (Some(Ipv4Addr::new(10, 89, 0, 1)), "10.88.0.0/16"),
        (Some(Ipv4Addr::new(10, 88, 0, 0)), "10.88.0.0/16"),
        (None, "10.88.0.0/31"),
    ] {
        net.gateway = gw;
        net.subnet = Subnet::parse(sub).unwrap();
        assert_eq!(
            net.validate().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    let mut net = NetworkConfig::new("bad name", "br", Subnet::parse("10.1.0.0/24").unwrap());
    assert!(net.validate().is_err());
    net.name = "ok".into();
    net.bridge = "a-bridge-name-too-long".into();
    assert!(net
        .validate()
        .unwrap_err()
        .to_string()
        .contains("bridge name"));
    for bad in [
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
        r#"{"cniVersion":"1.0.0","name":"","plugins":[{"type":"bridge"}]}"#,
        "nope",
    ] {
        assert_eq!(
            ConfList::parse(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
}

#[test]
fn results_parse_and_give_the_container_address() {
    let out = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"bt1","mac":"aa"},{"name":"veth1","mac":"bb"},{"name":"eth0","mac":"cc","sandbox":"/run/netns/x"}],
        "ips":[{"interface":2,"address":"10.231.1.2/24","gateway":"10.231.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
    let r: CniResult = serde_json::from_str(out).unwrap();
    assert_eq!(r.container_ipv4(), Some(Ipv4Addr::new(10, 231, 1, 2)));
    assert_eq!(r.ips[0].gateway.as_deref(), Some("10.231.1.1"));
    let again: CniResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(again, r);
}

#[test]
fn missing_plugin_directories_are_a_clear_error() {
    let mut cfg = CniConfig::new(Path::new("/nonexistent/berth-ipam"));
    cfg.plugin_dirs = vec![
        PathBuf::from("/nonexistent/berth-cni"),
        PathBuf::from("/nonexistent/other"),
    ];
    let e = Cni::new(cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let msg = e.to_string();
    assert!(msg.starts_with("no cni plugin directory found"), "{msg}");
    assert!(
        msg.contains("/nonexistent/berth-cni, /nonexistent/other"),
        "{msg}"
    );
    assert!(msg.contains("containernetworking-plugins"), "{msg}");
}

#[test]
fn plugin_errors_and_missing_plugins_name_the_plugin() {
    // A fake plugin directory: no root needed.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("failer");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"invalid subnet\",\"details\":\"10.300.0.0/24\"}'\nexit 1\n",
    )
    .unwrap();
    let texter = dir.path().join("texter");
    std::fs::write(&texter, "#!/bin/sh\necho 'plain failure' >&2\nexit 3\n").unwrap();
    let env = dir.path().join("env");
    std::fs::write(&env, "#!/bin/sh\ncat >\"$0.stdin\"\nenv | grep ^CNI_ | sort >\"$0.env\"\necho '{\"cniVersion\":\"1.0.0\"}'\n").unwrap();
    for f in [&fake, &texter, &env] {
        let mut p = std::fs::metadata(f).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
        std::fs::set_permissions(f, p).unwrap();
    }
    let mut cfg = CniConfig::new(&dir.path().join("ipam"));
    cfg.plugin_dirs = vec![
        PathBuf::from("/nonexistent/first"),
        dir.path().to_path_buf(),
    ];
    let cni = Cni::new(cfg).unwrap();
    let att = Attachment::new("c1", Path::new("/nonexistent/netns"));
    let list = |t: &str| {
        ConfList::parse(&format!(r#"{{"cniVersion":"1.0.0","name":"n1","plugins":[{{"type":"{t}","capabilities":{{"portMappings":true}}}}]}}"#)).unwrap()
    };

    // DEL does not need the namespace: the plugins see an empty CNI_NETNS.
    let e = cni.del(&list("failer"), &att, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.to_string(),
        "cni plugin failer (network \"n1\", DEL) failed (code 7): invalid subnet: 10.300.0.0/24"
    );
    let e = cni.del(&list("texter"), &att, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cni plugin texter (network \"n1\", DEL) failed: plain failure"
    );
    let e = cni.del(&list("nosuchplugin"), &att, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .starts_with("cni plugin \"nosuchplugin\" not found"),
        "{e}"
    );

    // What a plugin receives: the CNI_* environment and its configuration with name,
    // cniVersion, prevResult and the runtimeConfig of its capabilities injected.
    let mut att = att;
    att.port_mappings = vec![parse_publish("18080:80").unwrap()];
    let prev = CniResult {
        cni_version: "1.0.0".into(),
        ..CniResult::default()
    };
    cni.del(&list("env"), &att, Some(&prev)).unwrap();
    let env_out = std::fs::read_to_string(dir.path().join("env.env")).unwrap();
    assert!(env_out.contains("CNI_COMMAND=DEL\n"), "{env_out}");
    assert!(env_out.contains("CNI_CONTAINERID=c1\n"), "{env_out}");
    assert!(env_out.contains("CNI_IFNAME=eth0\n"), "{env_out}");
    assert!(env_out.contains("CNI_NETNS=\n"), "{env_out}");
    assert!(
        env_out.contains(&format!("CNI_PATH={}\n", dir.path().display())),
        "{env_out}"
    );
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("env.stdin")).unwrap())
            .unwrap();
    assert_eq!(stdin["name"], "n1");
    assert_eq!(stdin["cniVersion"], "1.0.0");
    assert_eq!(stdin["prevResult"]["cniVersion"], "1.0.0");
    assert_eq!(stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 18080);

    // ADD refuses a namespace that does not exist, and bad ids.
    assert_eq!(
        cni.add(&list("env"), &att).unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    att.container_id = "a/b".into();
    assert_eq!(
        cni.del(&list("env"), &att, None).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn chain_names_match_the_plugins() {
    // Observed from the bridge plugin 1.1.1 for network "berth-test-12088-4", container "gone".
    assert_eq!(
        cni::masq_chain_name("berth-test-12088-4", "gone"),
        "CNI-d28477ee44a31973b0d847b9"
    );
}

#[test]
fn leases_are_read_from_host_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CniConfig::new(dir.path());
    cfg.plugin_dirs = vec![dir.path().to_path_buf()];
    let cni = Cni::new(cfg).unwrap();
    assert!(cni.leases("net").unwrap().is_empty());
    let n = dir.path().join("net");
    std::fs::create_dir(&n).unwrap();
    std::fs::write(n.join("10.231.1.3"), "c2\r\neth0").unwrap();
    std::fs::write(n.join("10.231.1.2"), "c1\r\neth0").unwrap();
    std::fs::write(n.join("last_reserved_ip.0"), "10.231.1.3").unwrap();
    std::fs::write(n.join("lock"), "").unwrap();
    let l = cni.leases("net").unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].ip, Ipv4Addr::new(10, 231, 1, 2));
    assert_eq!(l[0].container_id, "c1");
    assert_eq!(l[1].ifname, "eth0");
}

// ---------------------------------------------------------------- root, real plugins

/// Root tests change host networking; they run one at a time.
static ROOT_LOCK: Mutex<()> = Mutex::new(());

const BRIDGE_PLUGIN: &str = "/usr/lib/cni/bridge";

fn root_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return None;
    }
    if !Path::new(BRIDGE_PLUGIN).exists() {
        eprintln!(
            "skipping {test}: {BRIDGE_PLUGIN} is missing (install containernetworking-plugins)"
        );
        return None;
    }
    for tool in ["ip", "iptables-save", "nsenter"] {
        if !run(&["sh", "-c", &format!("command -v {tool}")]).0 {
            eprintln!("skipping {test}: {tool} is missing");
            return None;
        }
    }
    Some(ROOT_LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs a command; (success, stdout + stderr).
fn run(args: &[&str]) -> (bool, String) {
    match Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), s)
        }
        Err(e) => (false, e.to_string()),
    }
}

fn in_ns(ns: &Path, args: &[&str]) -> (bool, String) {
    let net = format!("--net={}", ns.display());
    let mut all = vec!["nsenter", net.as_str()];
    all.extend_from_slice(args);
    run(&all)
}

/// `busybox ping`, a few tries (the first packet may wait for neighbour resolution).
fn ping(from: Option<&Path>, ip: Ipv4Addr) -> bool {
    let ip = ip.to_string();
    let args = ["/bin/busybox", "ping", "-c1", "-W1", ip.as_str()];
    (0..3).any(|_| match from {
        Some(ns) => in_ns(ns, &args).0,
        None => run(&args).0,
    })
}

/// The CNI part of the iptables state (nat and filter), normalised (no counters, no
/// comments), without portmap's shared chains (CNI-HOSTPORT-*: created once, kept by
/// design, removed by the guard when the test created them) — what must come back to
/// its starting state after DEL.
fn cni_rules() -> Vec<String> {
    let (ok, out) = run(&["iptables-save"]);
    assert!(ok, "iptables-save: {out}");
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| l.contains("CNI") && !l.starts_with('#'))
        .filter(|l| {
            !(l.starts_with(":CNI-HOSTPORT-")
                || l.starts_with("-A CNI-HOSTPORT-SETMARK")
                || l.starts_with("-A CNI-HOSTPORT-MASQ")
                || (l.contains("-j CNI-HOSTPORT-")
                    && ["-A PREROUTING", "-A OUTPUT", "-A POSTROUTING"]
                        .iter()
                        .any(|b| l.starts_with(b))))
        })
        .map(|l| match l.split_once(" [") {
            Some((decl, _)) if l.starts_with(':') => decl.to_string(),
            _ => l.to_string(),
        })
        .collect();
    lines.sort();
    lines
}

/// Splits an iptables-save rule into arguments (double quotes, backslash escapes).
fn split_rule(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                has = true;
            }
            '"' => {
                in_quotes = !in_quotes;
                has = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has {
                    args.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        args.push(cur);
    }
    args
}

/// Deletes the nat rules for which `pick` is true, then flushes and deletes the chains
/// they jumped to when `pick_chain` accepts them.
fn purge_nat(pick: impl Fn(&str) -> bool, pick_chain: impl Fn(&str) -> bool) {
    let (_, out) = run(&["iptables-save", "-t", "nat"]);
    let mut chains = Vec::new();
    for line in out.lines().filter(|l| l.starts_with("-A ") && pick(l)) {
        let args = split_rule(line);
        if let Some(j) = args.iter().position(|a| a == "-j") {
            if let Some(t) = args.get(j + 1) {
                if pick_chain(t) && !chains.contains(t) {
                    chains.push(t.clone());
                }
            }
        }
        let mut cmd: Vec<&str> = vec!["iptables", "-w", "-t", "nat", "-D"];
        cmd.extend(args.iter().skip(1).map(String::as_str));
        let _ = run(&cmd);
    }
    for c in chains {
        let _ = run(&["iptables", "-w", "-t", "nat", "-F", &c]);
        let _ = run(&["iptables", "-w", "-t", "nat", "-X", &c]);
    }
}

fn has_hostport_chains() -> bool {
    run(&["iptables-save", "-t", "nat"])
        .1
        .contains(":CNI-HOSTPORT-DNAT")
}

/// A test network and everything made for it, undone on drop.
struct TestNet {
    dir: tempfile::TempDir,
    cni: Cni,
    net: NetworkConfig,
    list: ConfList,
    attached: Vec<Attachment>,
    namespaces: Vec<PathBuf>,
    ip_forward: String,
    had_hostport_chains: bool,
    _lock: MutexGuard<'static, ()>,
}

impl TestNet {
    fn new(k: u32, lock: MutexGuard<'static, ()>) -> TestNet {
        let pid = std::process::id() % 100_000;
        let bridge = format!("bt{pid}{k}");
        // A /24 in 10.231.0.0/16 that no host address or route uses.
        let (_, used) = run(&["sh", "-c", "ip -4 -o addr; ip -4 route"]);
        let third = (0..250u32)
            .map(|i| (pid + k * 17 + i) % 250 + 1)
            .find(|x| !used.contains(&format!("10.231.{x}.")))
            .expect("a free 10.231.x.0/24");
        let subnet = Subnet::parse(&format!("10.231.{third}.0/24")).unwrap();
        let name = format!("berth-test-{pid}-{k}");
        let dir = tempfile::Builder::new()
            .prefix("berth-net-test")
            .tempdir_in("/run")
            .unwrap();
        std::fs::create_dir(dir.path().join("netns")).unwrap();
        let cni = Cni::new(CniConfig::new(&dir.path().join("ipam"))).unwrap();
        let version = cni.negotiate_version().unwrap();
        assert_eq!(version, CNI_VERSION);
        let net = NetworkConfig::new(&name, &bridge, subnet);
        let list = cni.conflist(&net, &version).unwrap();
        TestNet {
            dir,
            cni,
            net,
            list,
            attached: Vec::new(),
            namespaces: Vec::new(),
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap_or_default(),
            had_hostport_chains: has_hostport_chains(),
            _lock: lock,
        }
    }

    fn gateway(&self) -> Ipv4Addr {
        self.net.gateway_addr().unwrap()
    }

    fn netns(&mut self, name: &str) -> PathBuf {
        let p = self.dir.path().join("netns").join(name);
        netns::create(&p).unwrap();
        self.namespaces.push(p.clone());
        p
    }

    fn add(&mut self, id: &str, ns: &Path, ports: &[PortMapping]) -> (Attachment, CniResult) {
        let mut att = Attachment::new(id, ns);
        att.port_mappings = ports.to_vec();
        self.attached.push(att.clone());
        let r = self.cni.add(&self.list, &att).unwrap();
        (att, r)
    }

    fn leases(&self) -> Vec<cni::Lease> {
        self.cni.leases(&self.net.name).unwrap()
    }

    fn veths(&self) -> String {
        run(&["ip", "-o", "link", "show", "master", &self.net.bridge]).1
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for att in self.attached.drain(..).rev() {
            if let Err(e) = self.cni.del(&self.list, &att, None) {
                eprintln!("cleanup: cni DEL {}: {e}", att.container_id);
            }
        }
        for ns in self.namespaces.drain(..) {
            if let Err(e) = netns::remove(&ns) {
                eprintln!("cleanup: {e}");
            }
        }
        let _ = run(&["ip", "link", "del", &self.net.bridge]);
        // Rules a failed DEL left: the plugins tag theirs with the network name.
        let name = format!("\\\"{}\\\"", self.net.name);
        purge_nat(
            |l| l.contains(&name),
            |c| c.starts_with("CNI-") && !c.starts_with("CNI-HOSTPORT-"),
        );
        let subnet = self.net.subnet.to_string();
        purge_nat(
            |l| l.contains(&subnet),
            |c| c.starts_with("CNI-") && !c.starts_with("CNI-HOSTPORT-"),
        );
        // portmap's shared chains, when this test made them and nobody uses them now.
        if !self.had_hostport_chains {
            let (_, dnat) = run(&["iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]);
            if dnat.lines().filter(|l| l.starts_with("-A ")).count() == 0 {
                purge_nat(
                    |l| {
                        ["-A PREROUTING", "-A OUTPUT", "-A POSTROUTING"]
                            .iter()
                            .any(|b| l.starts_with(b))
                            && l.contains("-j CNI-HOSTPORT-")
                    },
                    |c| c.starts_with("CNI-HOSTPORT-"),
                );
                for c in [
                    "CNI-HOSTPORT-DNAT",
                    "CNI-HOSTPORT-SETMARK",
                    "CNI-HOSTPORT-MASQ",
                ] {
                    let _ = run(&["iptables", "-w", "-t", "nat", "-F", c]);
                    let _ = run(&["iptables", "-w", "-t", "nat", "-X", c]);
                }
            }
        }
        // The bridge plugin turns on forwarding for a gateway; put it back.
        if !self.ip_forward.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        }
    }
}

/// A child process we started, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` over plain TCP; the body, or why it failed.
fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn http_get_retry(addr: SocketAddr) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match http_get(addr) {
            Ok(body) => return Ok(body),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn netns_outlives_its_thread_and_is_removed() {
    let Some(lock) = root_or_skip("netns_outlives_its_thread_and_is_removed") else {
        return;
    };
    let mut t = TestNet::new(0, lock);
    let ns = t.netns("a");
    assert!(netns::exists(&ns));
    let (ok, links) = in_ns(&ns, &["ip", "-o", "link"]);
    assert!(ok, "{links}");
    assert_eq!(
        links.lines().count(),
        1,
        "only lo in a new namespace: {links}"
    );
    assert!(links.contains("lo:"), "{links}");
    // A second create on the same path is refused; the first stays.
    assert_eq!(
        netns::create(&ns).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert!(netns::exists(&ns));
    netns::remove(&ns).unwrap();
    assert!(!ns.exists());
    assert!(!netns::exists(&ns));
    netns::remove(&ns).unwrap(); // idempotent
                                 // A plain file is not a namespace.
    let f = t.dir.path().join("plain");
    std::fs::write(&f, "").unwrap();
    assert!(!netns::exists(&f));
}

#[test]
fn two_namespaces_reach_each_other_and_the_host() {
    let Some(lock) = root_or_skip("two_namespaces_reach_each_other_and_the_host") else {
        return;
    };
    let mut t = TestNet::new(1, lock);
    let (a, b) = (t.netns("a"), t.netns("b"));
    t.cni.loopback_up("ca", &a).unwrap();
    t.cni.loopback_up("cb", &b).unwrap();
    let (att_a, ra) = t.add("ca", &a, &[]);
    let (_, rb) = t.add("cb", &b, &[]);
    let (ip_a, ip_b) = (ra.container_ipv4().unwrap(), rb.container_ipv4().unwrap());
    eprintln!(
        "network {} on {}: a = {ip_a}, b = {ip_b}",
        t.net.subnet, t.net.bridge
    );
    for ip in [ip_a, ip_b] {
        assert!(t.net.subnet.is_host(ip) && ip != t.gateway(), "{ip}");
    }
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        ra.ips[0].gateway.as_deref(),
        Some(t.gateway().to_string().as_str())
    );
    let (_, lo) = in_ns(&a, &["ip", "-o", "link", "show", "lo"]);
    assert!(
        lo.contains("UP") || lo.contains("UNKNOWN"),
        "lo is up: {lo}"
    );
    let (_, eth0) = in_ns(&a, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains(&format!("{ip_a}/24")), "{eth0}");
    assert!(in_ns(&a, &["ip", "route"])
        .1
        .contains(&format!("default via {}", t.gateway())));

    assert!(ping(Some(&a), ip_b), "a reaches b");
    assert!(ping(Some(&b), ip_a), "b reaches a");
    assert!(ping(None, ip_a), "the host reaches a through the bridge");
    assert!(ping(Some(&a), t.gateway()), "a reaches the gateway");

    let leases = t.leases();
    assert_eq!(leases.len(), 2);
    assert!(leases
        .iter()
        .any(|l| l.ip == ip_a && l.container_id == "ca" && l.ifname == "eth0"));

    // CHECK passes while all is in place, and fails naming the plugin once eth0 is gone.
    t.cni.check(&t.list, &att_a, &ra).unwrap();
    assert!(in_ns(&a, &["ip", "link", "del", "eth0"]).0);
    let e = t.cni.check(&t.list, &att_a, &ra).unwrap_err();
    assert!(e.to_string().starts_with("cni plugin bridge"), "{e}");
    eprintln!("CHECK without eth0: {e}");

    for att in std::mem::take(&mut t.attached) {
        t.cni.del(&t.list, &att, None).unwrap();
    }
    assert!(t.leases().is_empty());
    assert_eq!(t.veths(), "");
}

#[test]
fn published_port_reaches_a_server_in_the_namespace() {
    let Some(lock) = root_or_skip("published_port_reaches_a_server_in_the_namespace") else {
        return;
    };
    let mut t = TestNet::new(2, lock);
    let before = cni_rules();
    let ns = t.netns("web");
    t.cni.loopback_up("web", &ns).unwrap();
    let host_port = free_port();
    let mapping = parse_publish(&format!("{host_port}:80/tcp")).unwrap();
    let (att, r) = t.add("web", &ns, &[mapping]);
    let ip = r.container_ipv4().unwrap();

    let www = t.dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from a berth namespace\n").unwrap();
    let net = format!("--net={}", ns.display());
    let _server = Proc(
        Command::new("nsenter")
            .args([
                net.as_str(),
                "/bin/busybox",
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
            ])
            .arg(&www)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let direct =
        http_get_retry(SocketAddr::from((ip, 80))).expect("the server answers on its own address");
    assert!(direct.contains("hello from a berth namespace"), "{direct}");

    let during = cni_rules();
    assert!(
        during
            .iter()
            .any(|l| l.contains(&format!("--dports {host_port}"))),
        "{during:#?}"
    );
    assert!(
        during
            .iter()
            .any(|l| l.contains(&format!("--to-destination {ip}:80"))),
        "{during:#?}"
    );

    // Through the gateway address and the host's own address (DNAT in OUTPUT for
    // local destinations), and through 127.0.0.1 (portmap sets route_localnet on the
    // bridge and masquerades 127.0.0.0/8 sources).
    let (_, host_addrs) = run(&["ip", "-4", "-o", "addr", "show", "scope", "global"]);
    let host_ip: Option<Ipv4Addr> = host_addrs
        .lines()
        .filter(|l| !l.contains(&t.net.bridge))
        .find_map(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)?
                .split('/')
                .next()?
                .parse()
                .ok()
        });
    let mut targets = vec![("gateway", t.gateway()), ("localhost", Ipv4Addr::LOCALHOST)];
    if let Some(h) = host_ip {
        targets.push(("host address", h));
    }
    for (what, addr) in targets {
        let got = http_get_retry(SocketAddr::from((addr, host_port)));
        eprintln!(
            "published port via {what} {addr}:{host_port}: {:?}",
            got.as_ref()
                .map(|b| b.lines().last().unwrap_or("").to_string())
        );
        assert!(
            got.unwrap().contains("hello from a berth namespace"),
            "via {what}"
        );
    }

    t.cni.check(&t.list, &att, &r).unwrap();
    t.cni.del(&t.list, &att, Some(&r)).unwrap();
    t.attached.clear();
    assert_eq!(cni_rules(), before, "DEL removed the port's rules");
    assert!(http_get(SocketAddr::from((t.gateway(), host_port))).is_err());
    assert!(t.leases().is_empty());
}

#[test]
fn twenty_add_del_cycles_leave_nothing_behind() {
    let Some(lock) = root_or_skip("twenty_add_del_cycles_leave_nothing_behind") else {
        return;
    };
    let mut t = TestNet::new(3, lock);
    let before = cni_rules();
    let host_port = free_port();
    let started = Instant::now();
    for i in 0..20 {
        let id = format!("cycle{i}");
        let ns = t.netns(&id);
        t.cni.loopback_up(&id, &ns).unwrap();
        let mapping = parse_publish(&format!("{host_port}:80")).unwrap();
        let (att, r) = t.add(&id, &ns, &[mapping]);
        assert!(t.net.subnet.contains(r.container_ipv4().unwrap()));
        assert_eq!(t.leases().len(), 1);
        t.cni.del(&t.list, &att, Some(&r)).unwrap();
        t.attached.clear();
        netns::remove(&ns).unwrap();
        t.namespaces.clear();
    }
    eprintln!(
        "20 cycles (netns + lo + ADD + DEL + rm) in {:?}",
        started.elapsed()
    );
    assert!(t.leases().is_empty());
    let ipam = t.dir.path().join("ipam").join(&t.net.name);
    let mut left: Vec<String> = std::fs::read_dir(&ipam)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(
        left.iter()
            .all(|f| f == "lock" || f.starts_with("last_reserved_ip")),
        "{left:?}"
    );
    assert_eq!(t.veths(), "", "no veth left on {}", t.net.bridge);
    assert!(!run(&["ip", "-o", "link"])
        .1
        .contains(&format!("master {} ", t.net.bridge)));
    assert_eq!(
        std::fs::read_dir(t.dir.path().join("netns"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(cni_rules(), before);
}

#[test]
fn del_after_the_namespace_is_gone_frees_the_address() {
    let Some(lock) = root_or_skip("del_after_the_namespace_is_gone_frees_the_address") else {
        return;
    };
    let mut t = TestNet::new(4, lock);
    let before = cni_rules();
    let ns = t.netns("gone");
    let (att, r) = t.add(
        "gone",
        &ns,
        &[parse_publish(&format!("{}:80", free_port())).unwrap()],
    );
    let ip = r.container_ipv4().unwrap();
    assert_eq!(t.leases().iter().map(|l| l.ip).collect::<Vec<_>>(), [ip]);
    netns::remove(&ns).unwrap();
    assert!(!ns.exists());
    // The kernel destroyed the veth pair with the namespace; DEL must still free the
    // lease and the rules, with or without the ADD result.
    t.cni.del(&t.list, &att, Some(&r)).unwrap();
    assert!(t.leases().is_empty());
    t.cni.del(&t.list, &att, None).unwrap();
    t.cni.del(&t.list, &att, Some(&r)).unwrap();
    t.attached.clear();
    assert_eq!(t.veths(), "");
    assert_eq!(cni_rules(), before);
    // And ADD into a missing namespace is refused before any plugin runs.
    let e = t.cni.add(&t.list, &att).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[test]
fn plugin_failure_names_the_plugin_and_undoes_the_add() {
    let Some(lock) = root_or_skip("plugin_failure_names_the_plugin_and_undoes_the_add") else {
        return;
    };
    let mut t = TestNet::new(5, lock);
    let ns = t.netns("bad");
    let mut list = t.list.clone();
    list.plugins[0]["ipam"]["ranges"][0][0]["subnet"] = "10.231.300.0/24".into();
    let att = Attachment::new("bad", &ns);
    let e = t.cni.add(&list, &att).unwrap_err();
    eprintln!("bad subnet: {e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "cni plugin bridge (network \"{}\", ADD) failed",
            t.net.name
        )),
        "{msg}"
    );
    assert!(msg.contains("10.231.300.0/24"), "{msg}");
    assert!(t.leases().is_empty());
    assert_eq!(
        in_ns(&ns, &["ip", "-o", "link"]).1.lines().count(),
        1,
        "no eth0 left"
    );

    // A plugin that is not installed.
    let mut list = t.list.clone();
    list.plugins
        .push(serde_json::json!({ "type": "berth-no-such-plugin" }));
    let e = t.cni.add(&list, &att).unwrap_err();
    eprintln!("missing plugin: {e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .starts_with("cni plugin \"berth-no-such-plugin\" not found"),
        "{e}"
    );
    // The ADD of bridge and portmap before it was undone.
    assert!(t.leases().is_empty());
    assert_eq!(
        in_ns(&ns, &["ip", "-o", "link"]).1.lines().count(),
        1,
        "no eth0 left"
    );

    // The network still works after failed ADDs: the bridge the first one left without
    // an address (see cni::repair_bridge_mac) is repaired before the next.
    let (att, r) = t.add("bad", &ns, &[]);
    let ip = r.container_ipv4().unwrap();
    assert!(t.net.subnet.contains(ip));
    assert!(ping(None, ip));
    t.cni.del(&t.list, &att, Some(&r)).unwrap();
    t.attached.clear();
    assert!(t.leases().is_empty());
}

#[test]
fn the_guard_cleans_up_after_a_failing_test() {
    let Some(lock) = root_or_skip("the_guard_cleans_up_after_a_failing_test") else {
        return;
    };
    let rules_before = cni_rules();
    let hostport_before = has_hostport_chains();
    let forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let made = std::sync::Mutex::new(None);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut t = TestNet::new(6, lock);
        let ns = t.netns("x");
        *made.lock().unwrap() =
            Some((t.net.bridge.clone(), t.dir.path().to_path_buf(), ns.clone()));
        t.cni.loopback_up("x", &ns).unwrap();
        t.add(
            "x",
            &ns,
            &[parse_publish(&format!("{}:80", free_port())).unwrap()],
        );
        panic!("a test failing with an attachment, a namespace and a published port");
    }));
    assert!(failed.is_err());
    let _lock = ROOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (bridge, dir, ns) = made.into_inner().unwrap().unwrap();
    assert!(
        !run(&["ip", "link", "show", &bridge]).0,
        "bridge {bridge} removed"
    );
    assert!(
        !netns::exists(&ns) && !dir.exists(),
        "namespace and temp dir removed"
    );
    assert_eq!(cni_rules(), rules_before);
    assert_eq!(has_hostport_chains(), hostport_before);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward_before
    );
}

#[test]
fn concurrent_adds_get_distinct_addresses() {
    let Some(lock) = root_or_skip("concurrent_adds_get_distinct_addresses") else {
        return;
    };
    let mut t = TestNet::new(7, lock);
    let before = cni_rules();
    let namespaces: Vec<PathBuf> = (0..8).map(|i| t.netns(&format!("p{i}"))).collect();
    let atts: Vec<Attachment> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| Attachment::new(&format!("par{i}"), ns))
        .collect();
    t.attached.extend(atts.iter().cloned());
    let results: Vec<CniResult> = std::thread::scope(|s| {
        let handles: Vec<_> = atts
            .iter()
            .map(|att| s.spawn(|| t.cni.add(&t.list, att)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let mut ips: Vec<Ipv4Addr> = results
        .iter()
        .map(|r| r.container_ipv4().unwrap())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "{ips:?}");
    assert_eq!(t.leases().len(), 8);
    // (Not its own address: lo is down in these namespaces.)
    let other = results[1].container_ipv4().unwrap();
    assert!(
        ping(Some(&namespaces[0]), other),
        "p0 reaches p1 at {other}"
    );
    std::thread::scope(|s| {
        let handles: Vec<_> = atts
            .iter()
            .zip(&results)
            .map(|(att, r)| s.spawn(|| t.cni.del(&t.list, att, Some(r))))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    t.attached.clear();
    assert!(t.leases().is_empty());
    assert_eq!(t.veths(), "");
    assert_eq!(cni_rules(), before);
}
