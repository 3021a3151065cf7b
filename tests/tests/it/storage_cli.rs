//! The `berth` CLI's storage commands against a real daemon: image import, ls, inspect,
//! tag, export, rm; snapshot ls; content ls; system df; gc.

use berth_tests::cli::{fails_with_1 as fails, json, ok};
use berth_tests::storage::*;
use berth_tests::TestDaemon;

/// The rows of a table (header first), split on runs of spaces.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

fn short(d: &str) -> String {
    d.trim_start_matches("sha256:").chars().take(12).collect()
}

#[test]
fn image_commands() {
    let d = TestDaemon::start();
    let (bb_file, bb) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let (ly_file, ly) = build_image(d.dir(), ImageKind::Layers, Format::OciArchive, None);
    let bb_path = bb_file.to_str().unwrap();
    let ly_path = ly_file.to_str().unwrap();

    // import: "NAME DIGEST" per image; --json gives the API's answer.
    assert_eq!(
        ok(d.cli(&["image", "import", bb_path])),
        format!("berth.test/busybox:latest {}\n", bb.digest)
    );
    let v = json(&ok(d.cli(&["--json", "image", "import", ly_path])));
    assert_eq!(v["images"][0]["name"], "berth.test/layers:latest");
    assert_eq!(v["images"][0]["target"]["digest"], ly.digest.to_string());
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    // --name renames the archive's single image.
    assert_eq!(
        ok(d.cli(&["image", "import", bb_path, "--name", "local/renamed:v1"])),
        format!("local/renamed:v1 {}\n", bb.digest)
    );

    // ls
    let table = rows(&ok(d.cli(&["image", "ls"])));
    assert_eq!(table[0], ["NAME", "DIGEST", "TYPE", "UPDATED"]);
    let names: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "berth.test/busybox:latest",
            "berth.test/layers:latest",
            "local/renamed:v1"
        ]
    );
    assert_eq!(table[1][1], short(&bb.digest.to_string()));
    assert_eq!(table[2][1], short(&ly.digest.to_string()));
    assert_eq!(table[1][2], "manifest", "{:?}", table[1]);
    let v = json(&ok(d.cli(&["--json", "image", "list"])));
    assert_eq!(v["images"].as_array().unwrap().len(), 3);
    assert_eq!(v["images"][1]["target"]["digest"], ly.digest.to_string());

    // inspect: JSON either way.
    let v = json(&ok(d.cli(&[
        "image",
        "inspect",
        "berth.test/layers:latest",
    ])));
    assert_eq!(v["unpacked"], true);
    assert_eq!(v["config"], ly.config_digest.to_string());
    let chain: Vec<String> = ly.chain_ids.iter().map(ToString::to_string).collect();
    assert_eq!(v["chain_ids"], serde_json::json!(chain));
    assert_eq!(
        json(&ok(d.cli(&[
            "--json",
            "image",
            "inspect",
            "berth.test/layers:latest"
        ]))),
        v
    );

    // tag
    assert_eq!(
        ok(d.cli(&[
            "image",
            "tag",
            "berth.test/layers:latest",
            "berth.test/layers:v2"
        ])),
        "berth.test/layers:v2\n"
    );
    let v = json(&ok(d.cli(&[
        "--json",
        "image",
        "tag",
        "berth.test/layers:v2",
        "berth.test/layers:v3",
    ])));
    assert_eq!(v["name"], "berth.test/layers:v3");
    assert_eq!(v["target"]["digest"], ly.digest.to_string());

    // export: the file, identical to the API's export.
    let out = d.dir().join("exported.tar");
    let text = ok(d.cli(&[
        "image",
        "export",
        "berth.test/layers:v2",
        out.to_str().unwrap(),
    ]));
    assert!(text.starts_with(&format!("{} (", out.display())), "{text}");
    let first = std::fs::read(&out).unwrap();
    let out2 = d.dir().join("exported2.tar");
    let v = json(&ok(d.cli(&[
        "--json",
        "image",
        "export",
        "berth.test/layers:v2",
        out2.to_str().unwrap(),
    ])));
    assert_eq!(v["bytes"], first.len());
    assert!(first == std::fs::read(&out2).unwrap(), "exports differ");
    assert!(!d.dir().join("exported.partial").exists());

    // snapshot ls, content ls, system df
    let table = rows(&ok(d.cli(&["snapshot", "ls"])));
    assert_eq!(table[0], ["KEY", "PARENT", "KIND", "ID", "SIZE"]);
    assert_eq!(table.len(), 1 + 4, "{table:?}");
    assert!(
        table[1..]
            .iter()
            .all(|r| r.contains(&"committed".to_string())),
        "{table:?}"
    );
    let v = json(&ok(d.cli(&["--json", "snapshot", "ls"])));
    let keys: Vec<&str> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    let mut want = chain.clone();
    want.sort();
    assert_eq!(keys, want);

    let table = rows(&ok(d.cli(&["content", "ls"])));
    assert_eq!(table[0], ["DIGEST", "SIZE", "COMMITTED"]);
    assert_eq!(table.len(), 1 + 3 + 5, "{table:?}");
    let v = json(&ok(d.cli(&["--json", "content", "ls"])));
    assert_eq!(v["content"].as_array().unwrap().len(), 8);

    let table = rows(&ok(d.cli(&["system", "df"])));
    assert_eq!(table[0], ["TYPE", "COUNT", "SIZE", "RECLAIMABLE"]);
    assert_eq!(table[1][..2], ["images", "5"]);
    assert_eq!(table[2][..2], ["content", "8"]);
    assert_eq!(table[3][..2], ["snapshots", "4"]);
    let v = json(&ok(d.cli(&["--json", "system", "df"])));
    assert_eq!(v["content"]["count"], 8);
    assert_eq!(v["content"]["reclaimable"], 0);

    // rm: every name of layers, then gc.
    assert_eq!(
        ok(d.cli(&[
            "image",
            "rm",
            "berth.test/layers:latest",
            "berth.test/layers:v2"
        ])),
        "berth.test/layers:latest\nberth.test/layers:v2\n"
    );
    let v = json(&ok(d.cli(&[
        "--json",
        "image",
        "rm",
        "berth.test/layers:v3",
    ])));
    assert_eq!(v["deleted"], "berth.test/layers:v3");
    let text = ok(d.cli(&["gc"]));
    assert!(
        text.starts_with("removed ") && text.contains("blob(s)") && text.contains("snapshot(s)"),
        "{text}"
    );
    let v = json(&ok(d.cli(&["--json", "gc"])));
    assert_eq!(v["content_removed"], 0, "{v}");
    let v = json(&ok(d.cli(&["--json", "content", "ls"])));
    assert_eq!(v["content"].as_array().unwrap().len(), 3);
    let table = rows(&ok(d.cli(&["snapshot", "ls"])));
    assert_eq!(table.len(), 2, "{table:?}");

    // -n: another namespace sees none of it.
    ok(d.cli(&["ns", "create", "other"]));
    let table = rows(&ok(d.cli(&["-n", "other", "image", "ls"])));
    assert_eq!(table.len(), 1, "{table:?}");
    assert_eq!(
        ok(d.cli(&["--namespace", "other", "image", "import", bb_path])),
        format!("berth.test/busybox:latest {}\n", bb.digest)
    );
    let v = json(&ok(d.cli(&["--json", "-n", "other", "snapshot", "ls"])));
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
    ok(d.cli(&["-n", "other", "image", "rm", "berth.test/busybox:latest"]));
    ok(d.cli(&["-n", "other", "gc"]));
    ok(d.cli(&["ns", "rm", "other"]));
}

#[test]
fn image_command_errors() {
    let d = TestDaemon::start();
    let (bb_file, _) = build_image(d.dir(), ImageKind::Busybox, Format::OciArchive, None);
    let bb_path = bb_file.to_str().unwrap();
    let missing = d.dir().join("missing.tar");
    let garbage = d.dir().join("garbage.tar");
    std::fs::write(&garbage, vec![0x5au8; 4096]).unwrap();
    let out = d.dir().join("out.tar");

    let line = fails(
        "import a missing file",
        d.cli(&["image", "import", missing.to_str().unwrap()]),
    );
    assert!(line.contains("missing.tar"), "{line}");
    let line = fails(
        "import garbage",
        d.cli(&["image", "import", garbage.to_str().unwrap()]),
    );
    assert!(
        line.contains("InvalidArgument") && line.contains("tar"),
        "{line}"
    );
    let line = fails(
        "bad platform",
        d.cli(&["image", "import", bb_path, "--platform", "linux"]),
    );
    assert!(line.contains("os/arch"), "{line}");
    let line = fails(
        "bad name",
        d.cli(&["image", "import", bb_path, "--name", "Bad Name"]),
    );
    assert!(line.contains("InvalidArgument"), "{line}");
    let line = fails(
        "unknown namespace",
        d.cli(&["-n", "nope", "image", "import", bb_path]),
    );
    assert!(line.contains("NotFound"), "{line}");
    for (what, args) in [
        ("inspect", vec!["image", "inspect", "no/such:image"]),
        ("rm", vec!["image", "rm", "no/such:image"]),
        ("tag", vec!["image", "tag", "no/such:image", "x/y:z"]),
        (
            "export",
            vec!["image", "export", "no/such:image", out.to_str().unwrap()],
        ),
    ] {
        let line = fails(what, d.cli(&args));
        assert!(line.contains("NotFound"), "{what}: {line}");
    }
    assert!(!out.exists(), "a failed export left a file");

    ok(d.cli(&["image", "import", bb_path]));
    let line = fails(
        "tag to an invalid name",
        d.cli(&["image", "tag", "berth.test/busybox:latest", "UPPER/case"]),
    );
    assert!(line.contains("InvalidArgument"), "{line}");
    let line = fails(
        "export into a missing directory",
        d.cli(&[
            "image",
            "export",
            "berth.test/busybox:latest",
            d.dir().join("no/such/dir/x.tar").to_str().unwrap(),
        ]),
    );
    assert!(line.contains("no/such/dir"), "{line}");
    // --json does not change how errors look.
    let line = fails(
        "--json inspect",
        d.cli(&["--json", "image", "inspect", "no/such:image"]),
    );
    assert!(line.contains("NotFound"), "{line}");

    // None of that stored anything but the one good import.
    let v = json(&ok(d.cli(&["--json", "image", "ls"])));
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
}
