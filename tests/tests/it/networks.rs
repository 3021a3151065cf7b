//! Container networking end to end with runc and the real CNI plugins: containers on
//! the default network reach each other by address and by name, a published port
//! answers on the host's 127.0.0.1, a user network with its own subnet, the `none`,
//! `host` and `container:` modes, 50 containers leaving no trace, a daemon killed
//! while containers are attached, and a running container whose veth went while the
//! daemon was down wired again. Every daemon has its own default network (bridge
//! and /24, see `TestDaemon::bridge`), so only this test's traffic and interfaces are
//! looked at.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::cli::{fails, ok, stderr};
use berth_tests::containers::{
    daemon_with_busybox, dir_entries, poll, shim_processes, sigkill, wait_gone, STATUS_TIMEOUT,
};
use berth_tests::TestDaemon;

/// Skips (with the reason printed) where the CNI plugins or root are missing.
fn cni_available() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        eprintln!("skipped: /usr/lib/cni/bridge missing (containernetworking-plugins)");
        return false;
    }
    true
}

/// `berth inspect KEY` as JSON.
fn inspect(d: &TestDaemon, key: &str) -> serde_json::Value {
    serde_json::from_str(&ok(d.cli(&["inspect", key]))).expect("inspect prints JSON")
}

/// The container's IPv4 address on its network.
fn ip_of(d: &TestDaemon, key: &str) -> Ipv4Addr {
    let v = inspect(d, key);
    v["network"]["ip"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {v:#}"))
        .parse()
        .expect("an IPv4 address")
}

fn in_subnet(ip: Ipv4Addr, cidr: &str) -> bool {
    let s = berth_engine::network::Subnet::parse(cidr).expect("a subnet");
    s.contains(ip)
}

/// A subnet next to the daemon's default one (10.23x.n.0/24 → 10.24x.n.0/24).
fn spare_subnet(d: &TestDaemon) -> String {
    d.subnet().replacen("10.23", "10.24", 1)
}

/// An HTTP GET from the host; the body, or the error.
fn http_get(addr: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(3),
    )
    .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// A detached busybox httpd serving `page` on port 80 (`extra` flags before the
/// image).
fn httpd(d: &TestDaemon, name: &str, page: &str, extra: &[&str]) {
    let script =
        format!("mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    ok(d.cli(&args));
}

/// Runs `script` in a fresh busybox container (`extra` flags first) and returns its
/// output; the container is removed.
fn run_sh(d: &TestDaemon, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = d.cli(&args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Interfaces listed in `/proc/net/dev` of a container.
fn interfaces(dev: &str) -> Vec<String> {
    let mut v: Vec<String> = dev
        .lines()
        .filter_map(|l| {
            let (name, counters) = l.split_once(':')?;
            let numeric = counters.split_whitespace().count() == 16
                && counters
                    .split_whitespace()
                    .all(|c| c.parse::<u64>().is_ok());
            numeric.then(|| name.trim().to_string())
        })
        .collect();
    v.sort();
    v
}

/// The ports (veths) on `bridge`.
fn bridge_ports(bridge: &str) -> Vec<String> {
    dir_entries(&Path::new("/sys/class/net").join(bridge).join("brif"))
}

/// host-local's lease files of `network` in the daemon's state directory (its other
/// files are a lock and the last reserved address).
fn leases(d: &TestDaemon, network: &str) -> Vec<String> {
    let mut v = dir_entries(&d.state().join("cni").join("ipam").join(network));
    v.retain(|n| n.parse::<Ipv4Addr>().is_ok());
    v
}

/// The daemon's bind-mounted network namespaces.
fn namespaces(d: &TestDaemon) -> Vec<String> {
    dir_entries(&d.state().join("netns"))
}

/// iptables rules (nat and filter) that mention one of `needles` — this test's
/// container ids, subnet or bridge (other tests run side by side).
fn rules_mentioning(needles: &[String]) -> Vec<String> {
    let mut v = Vec::new();
    for table in ["nat", "filter"] {
        let out = std::process::Command::new("iptables-save")
            .args(["-t", table])
            .output()
            .expect("iptables-save");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if !l.starts_with('#') && needles.iter().any(|n| l.contains(n.as_str())) {
                v.push(format!("{table}: {l}"));
            }
        }
    }
    v.sort();
    v
}

fn full_id(d: &TestDaemon, key: &str) -> String {
    inspect(d, key)["id"].as_str().expect("an id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_on_the_default_network_reach_each_other_by_address_and_name() {
    if !cni_available() {
        return;
    }
    let d = daemon_with_busybox().await;
    httpd(&d, "web", "hello-from-web", &[]);
    let web = ip_of(&d, "web");
    assert!(in_subnet(web, d.subnet()), "{web} not in {}", d.subnet());
    let v = inspect(&d, "web");
    assert_eq!(v["network"]["mode"], "bridge", "{v:#}");
    assert_eq!(v["network"]["network"], "berth0", "{v:#}");

    // By address and by name (through /etc/hosts): ping, and HTTP to busybox httpd.
    let out = run_sh(
        &d,
        &["--name", "client"],
        // Debian's busybox-static wget dies of SIGSEGV in its static resolver, so HTTP
        // goes through `nc` (by address and by name).
        &format!(
            "ping -c 1 -W 3 {web} >/dev/null && echo pinged-ip; ping -c 1 -W 3 web >/dev/null && echo pinged-name; \
             cat /etc/hosts; {get} {web} 80; {get} web 80",
            get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5"
        ),
    );
    assert!(
        out.contains("pinged-ip") && out.contains("pinged-name"),
        "{out}"
    );
    assert_eq!(out.matches("hello-from-web").count(), 2, "{out}");
    assert!(
        out.contains(&format!("{web}\t")),
        "web missing from /etc/hosts: {out}"
    );
    assert!(out.contains("hello-from-web"), "{out}");

    // The earlier container learns the later one's name: /etc/hosts is updated in place.
    ok(d.cli(&["run", "-d", "--name", "late", "busybox", "sleep", "1000"]));
    let late = ip_of(&d, "late");
    let hosts = ok(d.cli(&["exec", "web", "cat", "/etc/hosts"]));
    assert!(
        hosts.contains(&format!("{late}\t")) && hosts.contains("late"),
        "{hosts}"
    );
    let out = ok(d.cli(&[
        "exec",
        "late",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80",
    ]));
    assert!(out.contains("hello-from-web"), "{out}");
    ok(d.cli(&["rm", "-f", "late"]));
    let hosts = ok(d.cli(&["exec", "web", "cat", "/etc/hosts"]));
    assert!(
        !hosts.contains(&format!("{late}\t")),
        "late still in {hosts}"
    );

    // none: only lo. container:web: web's interfaces and its server on 127.0.0.1.
    let dev = run_sh(&d, &["--network", "none"], "cat /proc/net/dev");
    assert_eq!(interfaces(&dev), ["lo"], "{dev}");
    let out = run_sh(
        &d,
        &["--network", "container:web"],
        "cat /proc/net/dev; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 80",
    );
    assert_eq!(interfaces(&out), ["eth0", "lo"], "{out}");
    assert!(out.contains("hello-from-web"), "{out}");
    // Joining a `none` container: its namespace (runc's) has only lo, and the path
    // berth binds for the joiner goes when it exits.
    ok(d.cli(&[
        "run",
        "-d",
        "--name",
        "iso",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]));
    let dev = run_sh(&d, &["--network", "container:iso"], "cat /proc/net/dev");
    assert_eq!(interfaces(&dev), ["lo"], "{dev}");
    ok(d.cli(&["rm", "-f", "iso"]));
    // host: the host's interfaces, this daemon's bridge among them.
    let dev = run_sh(&d, &["--network", "host"], "cat /proc/net/dev");
    assert!(interfaces(&dev).contains(&d.bridge().to_string()), "{dev}");

    // Events carry the address.
    let journal = ok(d.cli(&["journal", "dump", "--json"]));
    assert!(
        journal.contains("container.network_attached") && journal.contains(&web.to_string()),
        "no attach event with {web}"
    );
    ok(d.cli(&["rm", "-f", "web"]));
    assert!(
        bridge_ports(d.bridge()).is_empty(),
        "{:?}",
        bridge_ports(d.bridge())
    );
    assert!(
        leases(&d, "berth0").is_empty(),
        "{:?}",
        leases(&d, "berth0")
    );
    assert!(namespaces(&d).is_empty(), "{:?}", namespaces(&d));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_port_answers_on_the_host() {
    if !cni_available() {
        return;
    }
    let d = daemon_with_busybox().await;
    httpd(&d, "pub", "published-page", &["-p", "18080:80"]);
    let v = inspect(&d, "pub");
    assert_eq!(v["network"]["ports"][0]["host_port"], 18080, "{v:#}");
    let body = poll("the published port to answer", STATUS_TIMEOUT, || async {
        http_get("127.0.0.1:18080").ok()
    })
    .await;
    assert!(body.contains("published-page"), "{body}");

    // The same host port again: refused at start with a clear error.
    let out = d.cli(&[
        "run", "-d", "--name", "again", "-p", "18080:80", "busybox", "sleep", "100",
    ]);
    let err = fails("publishing a published port", out);
    assert!(
        err.contains("18080") && err.contains("already published"),
        "{err}"
    );
    // A port some host process listens on.
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("a free port");
    let port = l.local_addr().unwrap().port();
    let out = d.cli(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "100",
    ]);
    let err = fails("publishing a port in use", out);
    assert!(err.contains("in use on the host"), "{err}");
    drop(l);

    ok(d.cli(&["rm", "-f", "pub"]));
    assert!(
        http_get("127.0.0.1:18080").is_err(),
        "the port still answers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_network_has_its_own_subnet_and_cannot_go_while_used() {
    if !cni_available() {
        return;
    }
    let d = daemon_with_busybox().await;
    let subnet = spare_subnet(&d);
    let bridge = format!("{}u1", d.bridge());
    ok(d.cli(&[
        "network", "create", "blue", "--subnet", &subnet, "--bridge", &bridge,
    ]));
    httpd(&d, "b1", "blue-page", &["--network", "blue"]);
    let ip = ip_of(&d, "b1");
    assert!(in_subnet(ip, &subnet), "{ip} not in {subnet}");
    let out = run_sh(
        &d,
        &["--network", "blue"],
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc b1 80",
    );
    assert!(out.contains("blue-page"), "{out}");
    assert_eq!(bridge_ports(&bridge).len(), 1);

    // In use: refused; overlapping another network: refused.
    let err = fails(
        "deleting a network in use",
        d.cli(&["network", "rm", "blue"]),
    );
    assert!(err.contains("in use"), "{err}");
    let err = fails(
        "an overlapping subnet",
        d.cli(&["network", "create", "green", "--subnet", &subnet]),
    );
    assert!(err.contains("overlaps"), "{err}");
    // A subnet the host routes elsewhere (its own LAN here) would cut the host off.
    let host_route = berth_engine::network::host::routes()
        .into_iter()
        .find(|r| {
            !Path::new("/sys/class/net")
                .join(&r.iface)
                .join("bridge")
                .exists()
        })
        .expect("the host has a route (not to a bridge) besides the default one");
    let err = fails(
        "a subnet of a host route",
        d.cli(&[
            "network",
            "create",
            "lan",
            "--subnet",
            &host_route.dst.to_string(),
        ]),
    );
    assert!(err.contains("overlaps the host's route"), "{err}");
    let out = d.cli(&["run", "--rm", "--network", "ghost", "busybox", "true"]);
    let err = fails("an unknown network", out);
    assert!(err.contains("ghost"), "{err}");

    ok(d.cli(&["rm", "-f", "b1"]));
    ok(d.cli(&["network", "rm", "blue"]));
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} left"
    );
    assert!(!d.state().join("cni/ipam/blue").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_containers_leave_no_trace() {
    if !cni_available() {
        return;
    }
    let d = daemon_with_busybox().await;
    // The network exists (bridge made) before the baseline is taken.
    run_sh(&d, &[], "true");
    let netns_list = || {
        String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    let before = (
        leases(&d, "berth0"),
        bridge_ports(d.bridge()),
        namespaces(&d),
        netns_list(),
        rules_mentioning(&[d.subnet().to_string(), d.bridge().to_string()]),
    );
    let mut ids = Vec::new();
    for i in 0..50 {
        let name = format!("c{i}");
        let mut args = vec!["run", "-d", "--name", name.as_str()];
        let port = format!("{}:80", 18100 + i);
        if i % 10 == 0 {
            args.extend_from_slice(&["-p", &port]);
        }
        args.extend_from_slice(&["busybox", "sleep", "1000"]);
        ok(d.cli(&args));
        ids.push(full_id(&d, &name));
    }
    assert_eq!(leases(&d, "berth0").len(), before.0.len() + 50);
    assert_eq!(bridge_ports(d.bridge()).len(), before.1.len() + 50);
    let mut needles: Vec<String> = ids.clone();
    needles.push(d.subnet().to_string());
    needles.push(d.bridge().to_string());
    assert!(
        !rules_mentioning(&ids).is_empty(),
        "no CNI rule names a container"
    );
    for i in 0..50 {
        ok(d.cli(&["rm", "-f", &format!("c{i}")]));
    }
    let after = (
        leases(&d, "berth0"),
        bridge_ports(d.bridge()),
        namespaces(&d),
        netns_list(),
        rules_mentioning(&[d.subnet().to_string(), d.bridge().to_string()]),
    );
    assert_eq!(before, after);
    assert_eq!(rules_mentioning(&ids), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn addresses_of_containers_that_died_with_the_daemon_down_are_released() {
    if !cni_available() {
        return;
    }
    let mut d = daemon_with_busybox().await;
    run_sh(&d, &[], "true");
    let base_ports = bridge_ports(d.bridge());
    let mut ids = Vec::new();
    for (name, extra) in [
        ("k1", vec!["-p", "18090:80"]),
        ("k2", vec![]),
        ("k3", vec![]),
    ] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(extra);
        args.extend_from_slice(&["busybox", "sleep", "1000"]);
        ok(d.cli(&args));
        ids.push(full_id(&d, name));
    }
    // k3 keeps running across the restart.
    assert_eq!(leases(&d, "berth0").len(), 3);
    assert_eq!(namespaces(&d).len(), 3);
    assert!(!rules_mentioning(&ids[..1]).is_empty());

    d.kill_9();
    // k1 and k2 die while the daemon is down: their shims are killed (and with them
    // supervision; the daemon kills what the shims leave running).
    let shims: Vec<(u32, std::path::PathBuf)> = shim_processes(d.state())
        .into_iter()
        .filter(|(_, b)| ids[..2].iter().any(|id| b.ends_with(id)))
        .collect();
    assert_eq!(shims.len(), 2, "{shims:?}");
    for (pid, _) in &shims {
        sigkill(*pid);
    }
    let pids: Vec<u32> = shims.iter().map(|(p, _)| *p).collect();
    assert!(wait_gone(&pids, Duration::from_secs(10)));
    d.restart();

    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let stopped = ["k1", "k2"]
            .iter()
            .all(|k| inspect(&d, k)["status"] == "stopped");
        if stopped && leases(&d, "berth0").len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not released: {:?}",
            leases(&d, "berth0")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let k3 = ip_of(&d, "k3");
    assert_eq!(leases(&d, "berth0"), [k3.to_string()]);
    assert_eq!(namespaces(&d), [ids[2].clone()]);
    assert_eq!(bridge_ports(d.bridge()).len(), base_ports.len() + 1);
    assert_eq!(rules_mentioning(&ids[..2]), Vec::<String>::new());
    for k in ["k1", "k2"] {
        let v = inspect(&d, k);
        assert!(
            v["network"]["ip"].is_null(),
            "{k} still has an address: {v:#}"
        );
    }
    // The live one still works after the restart.
    let out = ok(d.cli(&["exec", "k3", "cat", "/proc/net/dev"]));
    assert_eq!(interfaces(&out), ["eth0", "lo"]);
    let journal = ok(d.cli(&["journal", "dump", "--json"]));
    let detached = journal
        .lines()
        .filter(|l| {
            l.contains("container.network_detached")
                && ids[..2].iter().any(|id| l.contains(id.as_str()))
        })
        .count();
    assert_eq!(detached, 2, "one detach event for each of k1, k2");
}

/// The host interface whose index is `index`.
fn host_interface_with_index(index: u32) -> Option<String> {
    dir_entries(Path::new("/sys/class/net"))
        .into_iter()
        .find(|name| {
            std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"))
                .is_ok_and(|i| i.trim().parse() == Ok(index))
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_container_whose_veth_went_while_the_daemon_was_down_is_wired_again() {
    if !cni_available() {
        return;
    }
    let mut d = daemon_with_busybox().await;
    run_sh(&d, &[], "true");
    let base_ports = bridge_ports(d.bridge());
    for name in ["cut", "whole"] {
        ok(d.cli(&["run", "-d", "--name", name, "busybox", "sleep", "1000"]));
    }
    let (cut, whole) = (full_id(&d, "cut"), full_id(&d, "whole"));
    let whole_ip = ip_of(&d, "whole");
    // The host end of cut's veth: the interface its eth0 is linked to.
    let peer: u32 = ok(d.cli(&["exec", "cut", "cat", "/sys/class/net/eth0/iflink"]))
        .trim()
        .parse()
        .expect("an interface index");
    let veth = host_interface_with_index(peer).expect("cut's veth on the host");
    assert!(
        bridge_ports(d.bridge()).contains(&veth),
        "{veth} not on the bridge"
    );

    let seen = ok(d.cli(&["journal", "dump", "--json"])).lines().count();
    d.kill_9();
    let out = std::process::Command::new("ip")
        .args(["link", "del", &veth])
        .output()
        .expect("ip link del");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.restart();

    // Recovery finds the attachment broken (CNI CHECK) and wires it again.
    poll("cut's eth0 back", STATUS_TIMEOUT, || {
        let dev = d.cli(&["exec", "cut", "cat", "/proc/net/dev"]);
        let back = dev.status.success()
            && interfaces(&String::from_utf8_lossy(&dev.stdout)) == ["eth0", "lo"];
        std::future::ready(back.then_some(()))
    })
    .await;
    let v = inspect(&d, "cut");
    let ip = ip_of(&d, "cut");
    assert!(in_subnet(ip, d.subnet()), "{ip} not in {}", d.subnet());
    let gateway = v["network"]["gateway"]
        .as_str()
        .expect("a gateway")
        .to_string();
    ok(d.cli(&["exec", "cut", "ping", "-c", "1", "-W", "2", &gateway]));
    let mut want = vec![ip.to_string(), whole_ip.to_string()];
    want.sort();
    let mut held = leases(&d, "berth0");
    held.sort();
    assert_eq!(held, want, "one lease each, the old one of cut released");
    assert_eq!(bridge_ports(d.bridge()).len(), base_ports.len() + 2);
    // The healthy one was left alone.
    assert_eq!(ip_of(&d, "whole"), whole_ip);
    let after: Vec<String> = ok(d.cli(&["journal", "dump", "--json"]))
        .lines()
        .skip(seen)
        .map(str::to_string)
        .collect();
    let count = |topic: &str, id: &str| {
        after
            .iter()
            .filter(|l| l.contains(topic) && l.contains(id))
            .count()
    };
    assert_eq!(count("container.network_detached", &cut), 1, "{after:#?}");
    assert_eq!(count("container.network_attached", &cut), 1, "{after:#?}");
    assert_eq!(count("container.network_detached", &whole), 0, "{after:#?}");
    assert_eq!(count("container.network_attached", &whole), 0, "{after:#?}");
    // whole's /etc/hosts knows cut's address now.
    let hosts = ok(d.cli(&["exec", "whole", "cat", "/etc/hosts"]));
    assert!(
        hosts.lines().any(|l| l.starts_with(&format!("{ip}\t"))),
        "{hosts}"
    );
}
