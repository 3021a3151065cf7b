//! Container logs in the CRI format, as containerd and the kubelet write and read them.
//!
//! One file per container, `<root>/containers/<id>/container.log`, rotated by size into
//! `container.log.1` (newest rotated) … `container.log.<max_files>` (oldest). Every line
//! of the file is one record:
//!
//! ```text
//! 2026-11-28T17:49:07.123456789Z stdout F hello
//! 2026-11-28T17:49:07.123501002Z stderr P first 16 KiB of a long line…
//! 2026-11-28T17:49:07.123530000Z stderr F …and its end
//! ```
//!
//! The timestamp is RFC 3339 in UTC with nine fractional digits; `F` ends a line of the
//! container's output and `P` is a part of a longer one, continued by the next record of
//! the same stream. The text never holds a newline.
//!
//! - [`LogWriter`] (used by berth-shim): [`LogWriter::pump`] copies a container's stdout or
//!   stderr pipe into the file with a fixed buffer, one `write(2)` per record, and rotates
//!   before a record would take the file past [`LogConfig::max_size`].
//! - [`read`]: the records of all files (rotated ones first), with [`ReadOptions`] tail,
//!   since, until and stream filters; tail reads the files backwards, so its cost depends
//!   on the lines asked for, not on the size of the files.
//! - [`follow`]: the same records plus a [`Follower`] that continues exactly after them,
//!   across rotations, without losing or repeating a line.
//! - [`format_line`]: a record as `docker logs` prints it, with or without its timestamp.
//!
//! Partial records are joined by the readers: a [`LogRecord`] is always one line of the
//! container's output (at most [`MAX_JOINED`] bytes; longer lines come out in pieces).
//! Malformed lines are skipped and counted; a torn record at the end of the file (a write
//! not finished yet) is never returned and is read once it is complete.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

pub use reader::{follow, read, Follower, ReadOptions};
pub use writer::{LogConfig, LogWriter};

/// Longest text of one record, in bytes: longer lines are written as partial records.
pub const MAX_LINE: usize = 16 * 1024;

/// Longest line the readers join from partial records, in bytes; a longer line is
/// returned as several [`LogRecord`]s. Also the longest record a reader accepts.
pub const MAX_JOINED: usize = 1024 * 1024;

/// Which output of the container a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in the log file (`stdout`, `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn from_bytes(name: &[u8]) -> Option<Stream> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a container's output, as the readers return it: partial records joined,
/// newline stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When the line's first record was written.
    pub at: DateTime<Utc>,
    /// Its stream.
    pub stream: Stream,
    /// Its bytes, without the newline (not necessarily UTF-8).
    pub text: Vec<u8>,
}

/// `rec` as `docker logs` prints it: `<timestamp> <text>\n` with `timestamps`, else
/// `<text>\n`. The timestamp has the log file's format (RFC 3339, UTC, nine digits).
pub fn format_line(rec: &LogRecord, timestamps: bool) -> Vec<u8> {
    let mut line = Vec::with_capacity(rec.text.len() + 32);
    if timestamps {
        write_timestamp(&mut line, rec.at);
        line.push(b' ');
    }
    line.extend_from_slice(&rec.text);
    line.push(b'\n');
    line
}

/// Appends `at` as `2026-11-28T17:49:07.123456789Z`; writes into `buf`'s spare capacity,
/// so it does not allocate when `buf` has room.
fn write_timestamp(buf: &mut Vec<u8>, at: DateTime<Utc>) {
    let date = at.date_naive();
    let time = at.time();
    // A leap second shows as nanoseconds past 1e9; keep nine digits.
    let nanos = time.nanosecond().min(999_999_999);
    // Writing to a Vec cannot fail.
    let _ = write!(
        buf,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        date.year(),
        date.month(),
        date.day(),
        time.hour(),
        time.minute(),
        time.second(),
        nanos
    );
}

/// A record of the file, parsed; `text` borrows from the line.
#[derive(Debug)]
struct Parsed<'a> {
    at: DateTime<Utc>,
    stream: Stream,
    partial: bool,
    text: &'a [u8],
}

/// Parses one line of the file (without its newline): `<time> <stream> <tags> <text>`.
/// Tags are `:`-separated and the first says `P` or `F` (the kubelet's reading). `None`
/// when the line is malformed.
fn parse_record(line: &[u8]) -> Option<Parsed<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let at = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = Stream::from_bytes(fields.next()?)?;
    let tags = fields.next()?;
    let partial = match tags.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    // `<tags>` at the end of the line, without a space, is an empty text.
    let text = fields.next().unwrap_or_default();
    Some(Parsed {
        at,
        stream,
        partial,
        text,
    })
}

/// `container.log.<n>`.
fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The highest `n` ≤ `max_files` for which `container.log.<n>` exists.
fn highest_rotated(path: &Path, max_files: u32) -> io::Result<u32> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(0);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.as_encoded_bytes();
    let mut highest = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let entry_name = entry.file_name();
        let n = entry_name
            .as_encoded_bytes()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(b"."))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = n {
            if n <= max_files {
                highest = highest.max(n);
            }
        }
    }
    Ok(highest)
}
