//! Networks through the API and the CLI (issue 6): create, list, inspect and delete,
//! their events, and every refusal — a JSON error of the right status and kind, one
//! line from the CLI, and nothing written to the journal. No container is started
//! here. Networks use `172.31.x.0/24` subnets (test daemons' default networks are in
//! `10.232.0.0/13`), `napi-` names and, when they are deleted, bridges named after the
//! daemon's own (deleting a network removes its bridge, a host-wide name).

use berth_http::api::types::{CreateNetworkRequest, NetworkList, NetworkResponse, NetworkView};
use berth_http::client::Client;
use berth_tests::cli::{fails_with_1, json, ok};
use berth_tests::storage::Reply;
use berth_tests::{last_seq, next_event, TestDaemon};
use hyper::Method;

async fn post(c: &Client, body: &str) -> Reply {
    Reply::send(c, Method::POST, "/v1/networks", Some(body)).await
}

/// The daemon's default network (made at start): exactly one network says so.
async fn default_network(c: &Client) -> NetworkView {
    let list = c.network_list("").await.unwrap();
    let mut defaults: Vec<NetworkView> = list.networks.into_iter().filter(|n| n.default).collect();
    assert_eq!(defaults.len(), 1, "one default network: {defaults:#?}");
    defaults.remove(0)
}

fn names(list: &NetworkList) -> Vec<&str> {
    list.networks.iter().map(|n| n.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_list_inspect_delete_round_trip() {
    let d = TestDaemon::start();
    let c = d.client();
    let default = default_network(&c).await;
    assert_eq!(
        (default.bridge.as_str(), default.subnet.as_str()),
        (d.bridge(), d.subnet())
    );
    // Bridges of the networks made here are named after the daemon's, so that its drop
    // removes any left behind.
    let bridge = |k: &str| format!("{}{k}", d.bridge());
    let before = last_seq(&c).await;

    // Created: 201 with the view; the gateway defaults to the subnet's first address.
    let r = post(
        &c,
        r#"{"name":"napi-front","subnet":"172.31.41.0/24","labels":{"tier":"napi-front"}}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created: NetworkResponse = serde_json::from_slice(&r.body).unwrap();
    let front = created.network.clone();
    assert_eq!(front.name, "napi-front");
    assert_eq!(front.subnet, "172.31.41.0/24");
    assert_eq!(front.gateway.to_string(), "172.31.41.1");
    assert_eq!(front.labels["tier"], "napi-front");
    assert!(!front.default);
    assert!(
        !front.bridge.is_empty() && front.bridge.len() <= 15,
        "{front:?}"
    );
    assert!(front.containers.is_empty());
    assert!(created.seq > before);
    assert_eq!(last_seq(&c).await, created.seq);

    // The event is in the stream, on the network's own stream.
    let mut events = c
        .events(&format!("since={before}&topic=network.created"), None)
        .await
        .unwrap();
    let m = next_event(&mut events).await;
    assert_eq!(m.event.as_deref(), Some("network.created"));
    let e = m.envelope().unwrap();
    assert_eq!(e.seq, created.seq);
    assert_eq!(
        (e.stream.kind.as_str(), e.stream.id.as_str()),
        ("network", "napi-front")
    );
    assert_eq!(e.event["subnet"], "172.31.41.0/24");
    drop(events);

    // With a gateway, a bridge name and the typed client.
    let back = c
        .network_create(&CreateNetworkRequest {
            name: "napi-back".into(),
            subnet: "172.31.42.0/24".into(),
            gateway: Some("172.31.42.254".into()),
            bridge: Some(bridge("b")),
            labels: Default::default(),
        })
        .await
        .unwrap()
        .network;
    assert_eq!(back.gateway.to_string(), "172.31.42.254");
    assert_eq!(back.bridge, bridge("b"));

    // Listed (by name) and inspected; the label filter keeps only matching networks.
    let list = c.network_list("").await.unwrap();
    let mut want = vec![default.name.as_str(), "napi-back", "napi-front"];
    want.sort();
    assert_eq!(names(&list), want);
    let filtered = c.network_list("label=tier%3Dnapi-front").await.unwrap();
    assert_eq!(names(&filtered), ["napi-front"]);
    assert_eq!(
        names(&c.network_list("label=tier").await.unwrap()),
        ["napi-front"]
    );
    assert!(c
        .network_list("label=tier%3Dnapi-back")
        .await
        .unwrap()
        .networks
        .is_empty());
    assert_eq!(c.network_get("napi-front").await.unwrap().network, front);

    // The CLI: table, JSON, inspect.
    let table = ok(d.cli(&["network", "ls"]));
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"] {
        assert!(header.contains(col), "{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("napi-front "))
        .unwrap_or_else(|| panic!("no row for front: {table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "napi-front",
            "172.31.41.0/24",
            "172.31.41.1",
            &front.bridge,
            "0"
        ]
    );
    let listed = json(&ok(d.cli(&["network", "ls", "--json"])));
    assert_eq!(
        listed["networks"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let inspected = json(&ok(d.cli(&["network", "inspect", "napi-front"])));
    assert_eq!(inspected["name"], "napi-front");
    assert_eq!(inspected["subnet"], "172.31.41.0/24");
    assert_eq!(inspected["containers"], serde_json::json!([]));

    // Deleted: 200 with the name; gone from the API; its event follows.
    let seq = last_seq(&c).await;
    let deleted = c.network_delete("napi-back").await.unwrap();
    assert_eq!(deleted.deleted, "napi-back");
    assert!(deleted.seq > seq);
    Reply::send(&c, Method::GET, "/v1/networks/napi-back", None)
        .await
        .error("inspect of a deleted network", 404, "NotFound");
    let mut events = c
        .events(&format!("since={seq}&topic=network.deleted"), None)
        .await
        .unwrap();
    let m = next_event(&mut events).await;
    assert_eq!(m.envelope().unwrap().stream.id, "napi-back");
    drop(events);
    // Its subnet and name are free again.
    c.network_create(&CreateNetworkRequest {
        name: "napi-back".into(),
        subnet: "172.31.42.0/24".into(),
        bridge: Some(bridge("b")),
        ..Default::default()
    })
    .await
    .unwrap();

    // The CLI creates and removes.
    assert_eq!(
        ok(d.cli(&[
            "network",
            "create",
            "napi-side",
            "--subnet",
            "172.31.46.0/24",
            "--label",
            "k=v",
            "--bridge",
            &bridge("s"),
        ])),
        "napi-side\n"
    );
    assert_eq!(
        c.network_get("napi-side").await.unwrap().network.labels["k"],
        "v"
    );
    assert_eq!(
        ok(d.cli(&["network", "rm", "napi-side", "napi-back"])),
        "napi-side\nnapi-back\n"
    );
    assert_eq!(names(&c.network_list("").await.unwrap()), {
        let mut w = vec![default.name.as_str(), "napi-front"];
        w.sort();
        w
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_json_errors_and_write_nothing() {
    let d = TestDaemon::start();
    let c = d.client();
    let default = default_network(&c).await;
    let r = post(&c, r#"{"name":"napi-taken","subnet":"172.31.43.0/24"}"#).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let networks_before = c.network_list("").await.unwrap().networks;
    let before = last_seq(&c).await;
    let stats_before = c.journal_stats().await.unwrap().stats;

    // Bad bodies: 400, naming the problem.
    let m = post(&c, r#"{"name":"n1","subnet":"10.1.2.300/24"}"#)
        .await
        .error("invalid address in the subnet", 400, "InvalidArgument");
    assert!(m.contains("10.1.2.300/24"), "{m}");
    let m = post(&c, r#"{"name":"n1","subnet":"10.1.2.3/24"}"#)
        .await
        .error("host bits in the subnet", 400, "InvalidArgument");
    assert!(
        m.contains("10.1.2.3/24") && m.contains("10.1.2.0/24"),
        "{m}"
    );
    let m = post(&c, r#"{"name":"n1","subnet":"10.1.2.0"}"#)
        .await
        .error("no prefix", 400, "InvalidArgument");
    assert!(m.contains("10.1.2.0"), "{m}");
    let m = post(&c, r#"{"name":"n1","subnet":"172.31.44.0/24","ipv6":true}"#)
        .await
        .error("unknown field", 400, "InvalidArgument");
    assert!(m.contains("ipv6"), "{m}");
    let m = post(
        &c,
        r#"{"name":"n1","subnet":"172.31.44.0/24","gateway":"172.31.44"}"#,
    )
    .await
    .error("bad gateway", 400, "InvalidArgument");
    assert!(m.contains("gateway") && m.contains("172.31.44"), "{m}");
    let m = post(
        &c,
        r#"{"name":"n1","subnet":"172.31.44.0/24","gateway":"172.31.45.1"}"#,
    )
    .await
    .error("gateway outside the subnet", 400, "InvalidArgument");
    assert!(m.contains("172.31.45.1"), "{m}");
    let m = post(&c, r#"{"name":"a/b","subnet":"172.31.44.0/24"}"#)
        .await
        .error("bad name", 400, "InvalidArgument");
    assert!(m.contains("a/b"), "{m}");
    post(&c, r#"{"name":"n1"}"#)
        .await
        .error("no subnet", 400, "InvalidArgument");
    post(&c, r#"{"name":"n1","subnet":"172.31.44.0/24""#)
        .await
        .error("malformed JSON", 400, "InvalidArgument");

    // Conflicts: 409.
    let m = post(&c, r#"{"name":"n2","subnet":"172.31.43.128/25"}"#)
        .await
        .error("overlapping subnet", 409, "FailedPrecondition");
    assert!(
        m.contains("172.31.43.128/25") && m.contains("napi-taken"),
        "{m}"
    );
    let m = post(&c, r#"{"name":"n3","subnet":"172.31.0.0/16"}"#)
        .await
        .error("subnet containing another", 409, "FailedPrecondition");
    assert!(m.contains("napi-taken"), "{m}");
    let m = post(&c, r#"{"name":"napi-taken","subnet":"172.31.45.0/24"}"#)
        .await
        .error("same name twice", 409, "AlreadyExists");
    assert!(m.contains("napi-taken"), "{m}");
    let m = Reply::send(
        &c,
        Method::DELETE,
        &format!("/v1/networks/{}", default.name),
        None,
    )
    .await
    .error("delete of the default network", 409, "FailedPrecondition");
    assert!(m.contains(&default.name), "{m}");

    // Missing: 404.
    let m = Reply::send(&c, Method::DELETE, "/v1/networks/nosuch", None)
        .await
        .error("delete of a missing network", 404, "NotFound");
    assert!(m.contains("nosuch"), "{m}");
    let m = Reply::send(&c, Method::GET, "/v1/networks/nosuch", None)
        .await
        .error("inspect of a missing network", 404, "NotFound");
    assert!(m.contains("nosuch"), "{m}");

    // Bad list queries: 400.
    for path in [
        "/v1/networks?label=",
        "/v1/networks?label=%3Dv",
        "/v1/networks?bogus=1",
    ] {
        Reply::send(&c, Method::GET, path, None)
            .await
            .error(path, 400, "InvalidArgument");
    }

    // The same through the CLI: a non-zero exit and one line naming the problem. A bad
    // -p is refused before the daemon is asked (no image is needed for that).
    let cases: [(&str, &[&str], &str); 7] = [
        (
            "bad subnet",
            &["network", "create", "n1", "--subnet", "10.1.2.300/24"],
            "10.1.2.300/24",
        ),
        (
            "host bits",
            &["network", "create", "n1", "--subnet", "10.1.2.3/24"],
            "10.1.2.0/24",
        ),
        (
            "overlap",
            &["network", "create", "n2", "--subnet", "172.31.43.0/25"],
            "napi-taken",
        ),
        (
            "rm of a missing network",
            &["network", "rm", "nosuch"],
            "nosuch",
        ),
        (
            "inspect of a missing network",
            &["network", "inspect", "nosuch"],
            "nosuch",
        ),
        ("bad -p", &["create", "-p", "0:80", "busybox"], "0:80"),
        (
            "bad --publish protocol",
            &["run", "--publish", "8080:80/sctp", "busybox", "true"],
            "8080:80/sctp",
        ),
    ];
    for (what, args, names) in cases {
        let line = fails_with_1(what, d.cli(args));
        assert!(line.contains(names), "{what}: {line}");
    }

    // Nothing was written, nothing changed.
    assert_eq!(last_seq(&c).await, before);
    let stats_after = c.journal_stats().await.unwrap().stats;
    assert_eq!(stats_after.last_seq, stats_before.last_seq);
    assert_eq!(stats_after.records, stats_before.records);
    assert_eq!(c.network_list("").await.unwrap().networks, networks_before);
}

/// A container create body with a bad `ports` entry is a 400 naming it, before any
/// image or network is looked at; nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn container_create_refuses_bad_ports() {
    let d = TestDaemon::start();
    let c = d.client();
    let before = last_seq(&c).await;
    let create = |body: &'static str| {
        let c = c.clone();
        async move { Reply::send(&c, Method::POST, "/v1/containers", Some(body)).await }
    };
    let m = create(r#"{"image":"busybox","ports":[{"host_port":0,"container_port":80}]}"#)
        .await
        .error("host port 0", 400, "InvalidArgument");
    assert!(m.contains("65535"), "{m}");
    let m = create(r#"{"image":"busybox","ports":[{"host_port":8080,"container_port":0}]}"#)
        .await
        .error("container port 0", 400, "InvalidArgument");
    assert!(m.contains("65535"), "{m}");
    create(r#"{"image":"busybox","ports":[{"host_port":70000,"container_port":80}]}"#)
        .await
        .error("port out of range", 400, "InvalidArgument");
    let m = create(
        r#"{"image":"busybox","ports":[{"host_port":8080,"container_port":80,"protocol":"sctp"}]}"#,
    )
    .await
    .error("unknown protocol", 400, "InvalidArgument");
    assert!(m.contains("sctp"), "{m}");
    let m = create(
        r#"{"image":"busybox","ports":[{"host_port":8080,"container_port":80,"host_ip":"localhost"}]}"#,
    )
    .await
    .error("host_ip not an address", 400, "InvalidArgument");
    assert!(m.contains("localhost"), "{m}");
    let m = create(
        r#"{"image":"busybox","ports":[{"host_port":8080,"container_port":80,"hostPort":1}]}"#,
    )
    .await
    .error("unknown port field", 400, "InvalidArgument");
    assert!(m.contains("hostPort"), "{m}");
    let m = create(r#"{"image":"busybox","network":""}"#).await.error(
        "empty network",
        400,
        "InvalidArgument",
    );
    assert!(m.contains("network"), "{m}");
    assert_eq!(last_seq(&c).await, before);
}
