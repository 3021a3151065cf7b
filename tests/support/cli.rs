//! Assertions on the output of the `berth` CLI.

use std::process::Output;

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}; stderr: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts a failure reported as one `berth: ` line on stderr (and nothing on stdout);
/// returns that line.
#[track_caller]
pub fn fails(what: &str, out: Output) -> String {
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "{what}: succeeded; stdout: {}",
        stdout(&out)
    );
    assert_ne!(out.status.code(), Some(0), "{what}");
    assert!(out.stdout.is_empty(), "{what}: stdout: {}", stdout(&out));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: stderr: {err}");
    assert!(lines[0].starts_with("berth: "), "{what}: stderr: {err}");
    lines[0].to_string()
}

/// As [`fails`], and the exit code is exactly 1 (an error from the daemon or the
/// client, not a usage error).
#[track_caller]
pub fn fails_with_1(what: &str, out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: stdout {}",
        stdout(&out)
    );
    fails(what, out)
}

/// Parses JSON output, naming the text on failure.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
