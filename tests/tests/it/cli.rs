//! The `berth` CLI against a real daemon, and offline on a stopped daemon's root.

use berth_tests::bins::berth;
use berth_tests::cli::{fails, json, ok};
use berth_tests::{TestDaemon, GENESIS_SEQ};

#[test]
fn version_and_namespaces() {
    let d = TestDaemon::start();

    let text = ok(d.cli(&["version"]));
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains(&format!("client: {version}")), "{text}");
    assert!(
        text.contains(&format!("server: {version} (api v1")),
        "{text}"
    );
    let v = json(&ok(d.cli(&["--json", "version"])));
    assert_eq!(v["client"], version);
    assert_eq!(v["server"]["version"], version);
    assert_eq!(v["server"]["api_version"], "v1");

    assert_eq!(
        ok(d.cli(&["ns", "create", "team-a", "-l", "owner=ops"])),
        "team-a\n"
    );
    let v = json(&ok(d.cli(&["--json", "ns", "create", "team-b"])));
    assert_eq!(v["namespace"]["name"], "team-b");
    assert_eq!(v["seq"], GENESIS_SEQ + 2);

    let table = ok(d.cli(&["ns", "ls"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(lines[1].starts_with("default "), "{table}");
    assert!(
        lines[2].starts_with("team-a ") && lines[2].ends_with("owner=ops"),
        "{table}"
    );
    assert!(lines[3].starts_with("team-b "), "{table}");
    let v = json(&ok(d.cli(&["--json", "namespace", "list"])));
    let names: Vec<&str> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team-a", "team-b"]);
    assert_eq!(v["namespaces"][1]["labels"]["owner"], "ops");

    assert_eq!(
        ok(d.cli(&["ns", "rm", "team-a", "team-b"])),
        "team-a\nteam-b\n"
    );
    let v = json(&ok(d.cli(&["--json", "ns", "ls"])));
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 1);
    assert_eq!(v["seq"], GENESIS_SEQ + 4);
}

#[test]
fn errors_are_one_line_and_a_non_zero_exit() {
    let d = TestDaemon::start();
    let line = fails("invalid name", d.cli(&["ns", "create", "bad..name"]));
    assert!(line.contains("InvalidArgument"), "{line}");
    let line = fails("duplicate", d.cli(&["ns", "create", "default"]));
    assert!(line.contains("AlreadyExists"), "{line}");
    let line = fails("delete default", d.cli(&["ns", "rm", "default"]));
    assert!(line.contains("FailedPrecondition"), "{line}");
    let line = fails("delete missing", d.cli(&["ns", "rm", "missing"]));
    assert!(line.contains("NotFound"), "{line}");
    let line = fails("bad label", d.cli(&["ns", "create", "x", "-l", "novalue"]));
    assert!(line.contains("KEY=VALUE"), "{line}");

    let nowhere = d.dir().join("nowhere.sock");
    let line = fails(
        "no daemon",
        berth(&[
            "--host",
            &format!("unix://{}", nowhere.display()),
            "version",
        ]),
    );
    assert!(line.contains("cannot connect"), "{line}");
    let line = fails("bad host", berth(&["--host", "http://example", "version"]));
    assert!(line.contains("invalid host"), "{line}");
    let empty = d.dir().join("empty-root");
    std::fs::create_dir(&empty).unwrap();
    let line = fails(
        "no journal",
        berth(&["journal", "stats", "--root", empty.to_str().unwrap()]),
    );
    assert!(line.contains("no journal"), "{line}");

    // Nothing was written by any of them.
    let v = json(&ok(d.cli(&["--json", "ns", "ls"])));
    assert_eq!(v["seq"], GENESIS_SEQ);
}

#[test]
fn journal_commands_offline_and_online() {
    let mut d = TestDaemon::start();
    for name in ["a", "b", "c"] {
        ok(d.cli(&["ns", "create", name]));
    }
    ok(d.cli(&["ns", "rm", "b"]));
    // The two genesis records, three creations and a deletion.
    let last = GENESIS_SEQ + 4;
    let root = d.root().to_str().unwrap().to_string();

    // While the daemon runs, --root is refused clearly.
    for sub in ["stats", "dump", "verify"] {
        let line = fails(
            &format!("journal {sub} --root while running"),
            berth(&["journal", sub, "--root", &root]),
        );
        assert!(line.contains("in use"), "{line}");
    }
    // Through the daemon instead.
    let online_dump = ok(d.cli(&["--json", "journal", "dump"]));
    assert_eq!(online_dump.lines().count() as u64, last, "{online_dump}");
    let text = ok(d.cli(&["journal", "verify"]));
    assert!(
        text.contains(&format!("checked {last} records")) && text.contains(": ok"),
        "{text}"
    );
    let v = json(&ok(d.cli(&["--json", "journal", "stats"])));
    assert_eq!(v["stats"]["last_seq"], last);

    assert!(d.terminate().success());

    let text = ok(berth(&["journal", "stats", "--root", &root]));
    assert!(
        text.contains(&format!("records:      {last} (seq 1..={last})")),
        "{text}"
    );
    assert!(text.contains("namespace.created"), "{text}");
    assert!(text.contains("network.created"), "{text}");
    let v = json(&ok(berth(&["--json", "journal", "stats", "--root", &root])));
    assert_eq!(v["stats"]["records"], last);
    assert_eq!(v["topics"]["namespace.created"], 4);
    assert_eq!(v["topics"]["network.created"], 1);
    assert_eq!(v["topics"]["namespace.deleted"], 1);

    let text = ok(berth(&["journal", "dump", "--root", &root]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, last, "{text}");
    for (line, (seq, topic, ns, stream)) in lines.iter().zip([
        (1, "namespace.created", "default", "namespace/default"),
        (2, "network.created", "default", "network/berth0"),
        (3, "namespace.created", "a", "namespace/a"),
        (4, "namespace.created", "b", "namespace/b"),
        (5, "namespace.created", "c", "namespace/c"),
        (6, "namespace.deleted", "b", "namespace/b"),
    ]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], seq.to_string(), "{line}");
        assert_eq!(fields[2], topic, "{line}");
        assert_eq!(fields[3], ns, "{line}");
        assert_eq!(fields[4], stream, "{line}");
    }
    // Offline and online dumps agree exactly.
    let offline_dump = ok(berth(&["--json", "journal", "dump", "--root", &root]));
    assert_eq!(offline_dump, online_dump);
    let text = ok(berth(&[
        "journal", "dump", "--root", &root, "--from", "2", "--limit", "2",
    ]));
    let seqs: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(seqs, ["2", "3"]);

    let text = ok(berth(&["journal", "verify", "--root", &root]));
    assert!(
        text.contains(&format!("checked {last} records (1..={last})")),
        "{text}"
    );
    assert!(text.trim_end().ends_with("ok"), "{text}");
    let v = json(&ok(berth(&[
        "--json", "journal", "verify", "--root", &root,
    ])));
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");

    // Reading offline did not change anything the daemon sees.
    d.restart();
    let v = json(&ok(d.cli(&["--json", "ns", "ls"])));
    assert_eq!(v["seq"], last);
}

#[test]
fn events_with_count() {
    let d = TestDaemon::start();
    for name in ["a", "b"] {
        ok(d.cli(&["ns", "create", name]));
    }
    ok(d.cli(&["ns", "rm", "a"]));

    let text = ok(d.cli(&["events", "--since", "0", "--count", "3"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, (seq, topic)) in lines.iter().zip([
        (1, "namespace.created"),
        (2, "network.created"),
        (3, "namespace.created"),
    ]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], seq.to_string(), "{line}");
        assert_eq!(fields[2], topic, "{line}");
    }
    let text = ok(d.cli(&["--json", "events", "--since", "0", "--count", "5"]));
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| json(l)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let text = ok(d.cli(&[
        "--json",
        "events",
        "--since",
        "0",
        "--topic",
        "namespace.deleted",
        "--count",
        "1",
    ]));
    let v = json(text.trim());
    assert_eq!(
        (v["seq"].as_u64(), v["namespace"].as_str()),
        (Some(GENESIS_SEQ + 3), Some("a"))
    );
}
