//! Entry names, normalised once: relative to the snapshot root, no `.`, no `..`.

use std::borrow::Cow;

/// Why an entry name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadPath {
    /// A `..` component: the entry tries to leave its directory.
    DotDot,
    /// A NUL byte (possible in a PAX `path` record), which no path can hold.
    Nul,
}

impl BadPath {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BadPath::DotDot => "has a '..' component",
            BadPath::Nul => "contains a NUL byte",
        }
    }
}

/// Writes into `out` the normalised form of the tar name `raw`: leading `/` and `./`
/// and empty or `.` components dropped (an absolute name is taken relative to the
/// root), components joined by single `/`. Any `..` component is refused, wherever it
/// is and whatever it would resolve to. An empty result names the root itself.
pub(crate) fn normalise(raw: &[u8], out: &mut Vec<u8>) -> Result<(), BadPath> {
    out.clear();
    if raw.contains(&0) {
        return Err(BadPath::Nul);
    }
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(BadPath::DotDot),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(())
}

/// Splits a normalised, non-empty path into its parent (possibly empty: the root) and
/// its last component.
pub(crate) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A path for messages.
pub(crate) fn show(path: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, BadPath> {
        let mut out = Vec::new();
        normalise(raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn normalises() {
        for (raw, want) in [
            ("a/b", "a/b"),
            ("./a/b/", "a/b"),
            ("/etc/passwd", "etc/passwd"),
            ("//a//./b", "a/b"),
            ("./", ""),
            ("/", ""),
            (".", ""),
            ("...", "..."),
            ("a/.wh..wh..opq", "a/.wh..wh..opq"),
        ] {
            assert_eq!(norm(raw).unwrap(), want, "{raw}");
        }
        for bad in ["..", "../x", "a/../../x", "a/..", "/../x", "./a/../b"] {
            assert_eq!(norm(bad), Err(BadPath::DotDot), "{bad}");
        }
        assert_eq!(norm("a\0b"), Err(BadPath::Nul));
    }

    #[test]
    fn splits() {
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }
}
