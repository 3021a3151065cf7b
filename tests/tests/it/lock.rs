//! One daemon per root, and refusals at start-up.

use berth_tests::{create_ns, TestDaemon};

#[tokio::test(flavor = "multi_thread")]
async fn second_daemon_on_the_same_root_is_refused() {
    let d = TestDaemon::start();
    let c = d.client();
    create_ns(&c, "before").await;

    // Exactly the first one's flags: same root, state and socket.
    let out = d.run_another_berthd(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second berthd: {}", out.status);
    assert!(
        stderr.lines().any(|l| l.contains("already running")),
        "stderr: {stderr}"
    );
    let pid = d.pid().unwrap().to_string();
    assert!(
        stderr.contains(&pid),
        "stderr names the holder's pid {pid}: {stderr}"
    );

    // The first keeps serving, on its socket.
    assert!(d.socket().exists());
    assert_eq!(c.health().await.unwrap().status, "ok");
    create_ns(&c, "after").await;
    assert_eq!(c.namespaces().await.unwrap().namespaces.len(), 3);
}

#[test]
fn bad_start_up_flags_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("short-token");
    std::fs::write(&token, "short\n").unwrap();
    let token = token.to_str().unwrap();
    let other_root = dir.path().join("root");
    let other_state = dir.path().join("state");
    let (r, s) = (other_root.to_str().unwrap(), other_state.to_str().unwrap());
    let cases: [(&[&str], &str); 3] = [
        (
            &["--root", r, "--state", s, "--tcp", "127.0.0.1:1"],
            "--token-file",
        ),
        (
            &[
                "--root",
                r,
                "--state",
                s,
                "--tcp",
                "127.0.0.1:1",
                "--token-file",
                token,
            ],
            "too short",
        ),
        (&["--root", "relative", "--state", s], "absolute"),
    ];
    for (args, expect) in cases {
        let out = berth_tests::bins::run_with_timeout(
            std::process::Command::new(berth_tests::bins::bin("berthd")).args(args),
            std::time::Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("berthd: "), "{stderr}");
        assert!(lines[0].contains(expect), "{args:?}: {stderr}");
    }
    assert!(
        !other_root.exists(),
        "a refused start must not create its root"
    );
}
