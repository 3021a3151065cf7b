//! The readers: [`read`] and [`follow`].
//!
//! Both start from a consistent snapshot of the files: every file is opened (oldest
//! first) and then every path is looked at again; if one changed, a rotation ran in
//! between and the snapshot is taken again. From then on the files are read through
//! their descriptors, so a rotation cannot make a reader skip or repeat a file: a
//! [`Follower`] reads its file to the end once the log's path names another file, then
//! finds that file in a new snapshot and reads the ones after it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{highest_rotated, parse_record, rotated_path, LogRecord, Stream, MAX_JOINED};

/// How often a [`Follower`] looks for new records while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes read at once, forwards or backwards.
const CHUNK: usize = 64 * 1024;

/// Snapshots a [`Follower`] tries at once after a rotation before waiting a poll.
const FOLLOW_SNAPSHOT_ATTEMPTS: u32 = 10;

/// How long to retry a snapshot of a log that keeps rotating.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(2);

/// Which records a reader returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last this many lines (of those the other options let through). The files
    /// are read backwards, as far as these lines go (records are taken to be in time
    /// order, as the writer writes them, when combined with `since`).
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines written at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Lines of standard output.
    pub stdout: bool,
    /// Lines of standard error.
    pub stderr: bool,
}

impl Default for ReadOptions {
    /// Every line of both streams.
    fn default() -> Self {
        ReadOptions {
            tail: None,
            since: None,
            until: None,
            stdout: true,
            stderr: true,
        }
    }
}

impl ReadOptions {
    fn wants(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    fn in_window(&self, at: DateTime<Utc>) -> bool {
        !matches!(self.since, Some(since) if at < since)
            && !matches!(self.until, Some(until) if at > until)
    }
}

/// The lines of the log at `path` and of its rotated files (`max_files` of them at most),
/// oldest first, as [`ReadOptions`] selects them. A line still being written (partial
/// records without their final one) comes last, as far as it got. No file at all is an
/// empty log.
pub fn read(path: &Path, max_files: u32, opts: &ReadOptions) -> io::Result<Vec<LogRecord>> {
    let (mut records, mut follower) = open(path, max_files, opts)?;
    follower.scanner.flush(&mut records);
    keep_tail(&mut records, opts.tail);
    if follower.scanner.skipped > 0 {
        tracing::warn!(
            path = %path.display(),
            skipped = follower.scanner.skipped,
            "malformed container log lines skipped"
        );
    }
    Ok(records)
}

/// As [`read`], and a [`Follower`] that returns the lines written after these, each once.
/// A line still being written is not in the first part; the follower returns it whole
/// once it is finished.
///
/// With `tail`, a line that was being written when the log was opened and whose first
/// parts lie before the lines returned may come out without those parts.
pub fn follow(
    path: &Path,
    max_files: u32,
    opts: &ReadOptions,
) -> io::Result<(Vec<LogRecord>, Follower)> {
    let (records, follower) = open(path, max_files, opts)?;
    if follower.scanner.skipped > 0 {
        tracing::warn!(
            path = %path.display(),
            skipped = follower.scanner.skipped,
            "malformed container log lines skipped"
        );
    }
    Ok((records, follower))
}

/// Follows a container's log: see [`follow`].
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    max_files: u32,
    scanner: Scanner,
    /// The file being read: the log itself, or a rotated file not finished yet.
    current: Option<Source>,
    buf: Vec<u8>,
}

impl Follower {
    /// The next lines written, waiting up to `timeout` for at least one (polling every
    /// 50 ms); empty when none came. Follows rotations: once the log's path names another
    /// file, the old one is read to its end through its descriptor, then the files
    /// rotated after it, then the new log from its start. If the follower fell more than
    /// `max_files` rotations behind, the lines of the files deleted meanwhile are lost
    /// (and a warning logged). With `max_files` 0 (truncation), lines written between two
    /// polls around a truncation may be lost.
    pub fn next_batch(&mut self, timeout: Duration) -> io::Result<Vec<LogRecord>> {
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            self.poll(&mut records)?;
            let now = Instant::now();
            if !records.is_empty() || now >= deadline {
                return Ok(records);
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    }

    /// Malformed lines skipped so far (including by the initial read).
    pub fn skipped(&self) -> u64 {
        self.scanner.skipped
    }

    /// Reads whatever is new, following a rotation if there was one.
    fn poll(&mut self, out: &mut Vec<LogRecord>) -> io::Result<()> {
        if let Some(current) = self.current.as_mut() {
            drain(current, &mut self.scanner, &mut self.buf, out)?;
        }
        let now_at_path = match std::fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino(), meta.len()),
            // No log yet, or a rotation between its rename and the new file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(current) = self.current.as_mut() {
            if (now_at_path.0, now_at_path.1) == current.id {
                if now_at_path.2 < current.pos {
                    // Truncated in place (max_files 0): start over.
                    current.file.seek(SeekFrom::Start(0))?;
                    current.pos = 0;
                    self.scanner.reset_carry();
                    drain(current, &mut self.scanner, &mut self.buf, out)?;
                }
                return Ok(());
            }
            // Rotated: nothing more will be written to our file; finish it.
            drain(current, &mut self.scanner, &mut self.buf, out)?;
        }
        let mut files = None;
        for _ in 0..FOLLOW_SNAPSHOT_ATTEMPTS {
            files = snapshot(&self.path, self.max_files)?;
            if files.is_some() {
                break;
            }
            std::thread::yield_now();
        }
        let Some(files) = files else {
            // Rotating right now: look again at the next poll.
            return Ok(());
        };
        let next: Vec<Source> = match &self.current {
            None => files,
            Some(current) => match files.iter().position(|f| f.id == current.id) {
                Some(i) => files.into_iter().skip(i + 1).collect(),
                None => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "container log rotated more than {} times while followed; lines lost",
                        self.max_files
                    );
                    files
                }
            },
        };
        if next.is_empty() {
            return Ok(());
        }
        if self.current.is_some() {
            self.scanner.end_of_file();
        }
        let last = next.len() - 1;
        for (i, mut source) in next.into_iter().enumerate() {
            drain(&mut source, &mut self.scanner, &mut self.buf, out)?;
            if i < last {
                self.scanner.end_of_file();
            } else {
                self.current = Some(source);
            }
        }
        Ok(())
    }
}

/// The initial read shared by [`read`] and [`follow`]: a snapshot, the start of the tail
/// in it, everything from there; the follower continues in the newest file.
fn open(path: &Path, max_files: u32, opts: &ReadOptions) -> io::Result<(Vec<LogRecord>, Follower)> {
    let files = consistent_snapshot(path, max_files)?;
    let (start_file, start_pos) = match opts.tail {
        Some(n) => tail_start(&files, n, opts)?,
        None => (0, 0),
    };
    let mut scanner = Scanner::new(opts.clone());
    let mut buf = vec![0u8; CHUNK];
    let mut records = Vec::new();
    let last = files.len().saturating_sub(1);
    let mut current = None;
    for (i, mut source) in files.into_iter().enumerate().skip(start_file) {
        if i == start_file && start_pos > 0 {
            source.file.seek(SeekFrom::Start(start_pos))?;
            source.pos = start_pos;
        }
        drain(&mut source, &mut scanner, &mut buf, &mut records)?;
        if i < last {
            scanner.end_of_file();
        } else {
            current = Some(source);
        }
    }
    keep_tail(&mut records, opts.tail);
    Ok((
        records,
        Follower {
            path: path.to_owned(),
            max_files,
            scanner,
            current,
            buf,
        },
    ))
}

fn keep_tail(records: &mut Vec<LogRecord>, tail: Option<usize>) {
    if let Some(n) = tail {
        if records.len() > n {
            records.drain(..records.len() - n);
        }
    }
}

/// Identity of a file: (device, inode).
type FileId = (u64, u64);

/// An open log file and how far it was read.
#[derive(Debug)]
struct Source {
    file: File,
    id: FileId,
    pos: u64,
}

/// Reads `source` from its position to its current end.
fn drain(
    source: &mut Source,
    scanner: &mut Scanner,
    buf: &mut [u8],
    out: &mut Vec<LogRecord>,
) -> io::Result<()> {
    loop {
        let n = match source.file.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        source.pos += u64::try_from(n).unwrap_or(u64::MAX);
        scanner.feed(&buf[..n], out);
    }
}

/// [`snapshot`], retried while the files keep changing.
fn consistent_snapshot(path: &Path, max_files: u32) -> io::Result<Vec<Source>> {
    let deadline = Instant::now() + SNAPSHOT_PATIENCE;
    loop {
        if let Some(files) = snapshot(path, max_files)? {
            return Ok(files);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "container log {} kept rotating while being opened",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Opens the rotated files (oldest first) and the log, then checks that every path still
/// names the file opened from it (or still nothing) and that no rotated file appeared
/// beyond those looked at. `None` if not: a rotation ran meanwhile.
fn snapshot(path: &Path, max_files: u32) -> io::Result<Option<Vec<Source>>> {
    // Look at the rotated files that exist and one more, not at all `max_files`.
    let highest = match highest_rotated(path, max_files) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(e) => return Err(e),
    };
    let top = highest.saturating_add(1).min(max_files);
    let paths: Vec<PathBuf> = (1..=top)
        .rev()
        .map(|n| rotated_path(path, n))
        .chain(std::iter::once(path.to_owned()))
        .collect();
    let mut opened = Vec::with_capacity(paths.len());
    for p in &paths {
        opened.push(open_source(p)?);
    }
    for (p, source) in paths.iter().zip(&opened) {
        if stat_id(p)? != source.as_ref().map(|s| s.id) {
            return Ok(None);
        }
    }
    // A file that moved past `top` meanwhile would still be there.
    if highest_rotated(path, max_files)? > top {
        return Ok(None);
    }
    Ok(Some(opened.into_iter().flatten().collect()))
}

fn open_source(path: &Path) -> io::Result<Option<Source>> {
    match File::open(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            Ok(Some(Source {
                file,
                id: (meta.dev(), meta.ino()),
                pos: 0,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot open container log {}: {e}", path.display()),
        )),
    }
}

fn stat_id(path: &Path) -> io::Result<Option<FileId>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some((meta.dev(), meta.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where to start reading so that the last `n` lines selected by `opts` (and the parts of
/// a line still being written, as far as they are met) are all read: (file index, byte
/// offset of a record). Reads the files backwards from the end of the newest.
fn tail_start(files: &[Source], n: usize, opts: &ReadOptions) -> io::Result<(usize, u64)> {
    let Some(last) = files.len().checked_sub(1) else {
        return Ok((0, 0));
    };
    let mut counted = 0;
    // Per stream: a line is wanted whose first record has not been met yet, and the
    // bytes of it met so far.
    let mut open = [false; 2];
    let mut open_bytes = [0usize; 2];
    let mut seen = [false; 2];
    let mut start = None;
    for (index, source) in files.iter().enumerate().rev() {
        if index != last && counted >= n && !open.contains(&true) {
            break;
        }
        let size = source.file.metadata()?.len();
        let mut lines = BackLines::new(&source.file, size)?;
        if index == last {
            start = Some((last, lines.complete_end()));
        }
        while let Some((offset, line)) = lines.next_line()? {
            let Some(record) = parse_record(line) else {
                continue;
            };
            if !opts.wants(record.stream) {
                continue;
            }
            let s = record.stream.index();
            let first = !seen[s];
            seen[s] = true;
            if record.partial {
                // Partial records met first belong to the line still being written.
                if first {
                    open[s] = true;
                    open_bytes[s] = 0;
                }
                if open[s] {
                    start = Some((index, offset));
                    open_bytes[s] += record.text.len();
                    // Readers cut lines this long into pieces anyway: no need for
                    // its beginning.
                    if open_bytes[s] > MAX_JOINED {
                        open[s] = false;
                    }
                }
            } else {
                // A final record ends the line before the one met last of this stream.
                open[s] = false;
                // A line starts no later than its final record: one written at or
                // before `until` certainly counts (others may too; reading more is safe).
                let before_until = !matches!(opts.until, Some(until) if record.at > until);
                if counted < n && before_until {
                    counted += 1;
                    open[s] = true;
                    open_bytes[s] = record.text.len();
                    start = Some((index, offset));
                }
            }
            // Records are in time order: from one older than `since` on, none is wanted.
            if matches!(opts.since, Some(since) if record.at < since) {
                counted = n;
            }
            if counted >= n && !open.contains(&true) {
                break;
            }
        }
    }
    Ok(start.unwrap_or((last, 0)))
}

/// The complete lines of a file, last first, read in chunks from its end. The bytes after
/// the last newline (a record being written) are left out; so is a "line" longer than
/// [`MAX_JOINED`], which cannot be a record.
struct BackLines<'a> {
    file: &'a File,
    /// File offset of `buf[0]`.
    lo: u64,
    buf: Vec<u8>,
    /// `buf[..end]` is not returned yet; it is empty or ends with a newline.
    end: usize,
    complete_end: u64,
}

impl<'a> BackLines<'a> {
    fn new(file: &'a File, size: u64) -> io::Result<BackLines<'a>> {
        let mut lines = BackLines {
            file,
            lo: size,
            buf: Vec::new(),
            end: 0,
            complete_end: 0,
        };
        // Find the last newline, dropping what follows it.
        while lines.lo > 0 {
            let mut chunk = lines.read_before()?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                chunk.truncate(i + 1);
                lines.end = chunk.len();
                lines.buf = chunk;
                lines.complete_end = lines.lo + u64::try_from(lines.end).unwrap_or(u64::MAX);
                break;
            }
        }
        Ok(lines)
    }

    /// Offset just after the last newline of the file.
    fn complete_end(&self) -> u64 {
        self.complete_end
    }

    /// Reads the chunk before `lo` and moves `lo` to its start. Empty at the start of the
    /// file, or if the file shrank meanwhile (then it is as if it began here).
    fn read_before(&mut self) -> io::Result<Vec<u8>> {
        let want = u64::try_from(CHUNK).unwrap_or(u64::MAX).min(self.lo);
        let mut chunk = vec![0u8; usize::try_from(want).unwrap_or(CHUNK)];
        let from = self.lo - want;
        match self.file.read_exact_at(&mut chunk, from) {
            Ok(()) => {
                self.lo = from;
                Ok(chunk)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.lo = 0;
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// The previous complete line (without its newline) and its offset.
    fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if self.end == 0 {
                return Ok(None);
            }
            let body = &self.buf[..self.end - 1];
            if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                let line_end = self.end - 1;
                self.end = i + 1;
                let offset = self.lo + u64::try_from(i + 1).unwrap_or(u64::MAX);
                return Ok(Some((offset, &self.buf[i + 1..line_end])));
            }
            if self.lo == 0 {
                let line_end = self.end - 1;
                self.end = 0;
                return Ok(Some((0, &self.buf[..line_end])));
            }
            if self.end > MAX_JOINED {
                // Not a record: drop it, and its beginning up to the previous newline.
                self.skip_to_previous_newline()?;
                continue;
            }
            let mut chunk = self.read_before()?;
            chunk.extend_from_slice(&self.buf[..self.end]);
            self.end = chunk.len();
            self.buf = chunk;
        }
    }

    fn skip_to_previous_newline(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.end = 0;
        while self.lo > 0 {
            let mut chunk = self.read_before()?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                chunk.truncate(i + 1);
                self.end = chunk.len();
                self.buf = chunk;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Turns the bytes of the files, in order, into lines: splits records, keeps a torn last
/// record until its end arrives, joins partial records per stream, filters.
#[derive(Debug)]
struct Scanner {
    opts: ReadOptions,
    /// The bytes of a record whose newline has not been read yet.
    carry: Vec<u8>,
    /// Inside an overlong "record": drop everything up to the next newline.
    discarding: bool,
    /// Per stream, the line whose partial records were read but not its final one.
    pending: [Option<LogRecord>; 2],
    skipped: u64,
}

impl Scanner {
    fn new(opts: ReadOptions) -> Scanner {
        Scanner {
            opts,
            carry: Vec::new(),
            discarding: false,
            pending: [None, None],
            skipped: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<LogRecord>) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            if self.discarding {
                self.discarding = false;
                self.skipped += 1;
            } else if self.carry.is_empty() {
                self.record(&data[..i], out);
            } else {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&data[..i]);
                self.record(&line, out);
                line.clear();
                self.carry = line;
            }
            data = &data[i + 1..];
        }
        if !self.discarding && !data.is_empty() {
            self.carry.extend_from_slice(data);
            if self.carry.len() > MAX_JOINED {
                self.carry = Vec::new();
                self.discarding = true;
            }
        }
    }

    /// The file ended for good: a torn record left in it is malformed.
    fn end_of_file(&mut self) {
        if self.discarding || !self.carry.is_empty() {
            self.skipped += 1;
        }
        self.reset_carry();
    }

    fn reset_carry(&mut self) {
        self.carry.clear();
        self.discarding = false;
    }

    /// Returns the lines still being written, as far as they got.
    fn flush(&mut self, out: &mut Vec<LogRecord>) {
        let mut rest: Vec<LogRecord> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by_key(|r| r.at);
        for record in rest {
            emit(&self.opts, record, out);
        }
    }

    fn record(&mut self, line: &[u8], out: &mut Vec<LogRecord>) {
        let Some(record) = parse_record(line) else {
            self.skipped += 1;
            return;
        };
        if !self.opts.wants(record.stream) {
            return;
        }
        let slot = &mut self.pending[record.stream.index()];
        let joined = match slot.take() {
            Some(mut line) if line.text.len() + record.text.len() <= MAX_JOINED => {
                line.text.extend_from_slice(record.text);
                line
            }
            Some(too_long) => {
                emit(&self.opts, too_long, out);
                new_line(&record)
            }
            None => new_line(&record),
        };
        if record.partial {
            *slot = Some(joined);
        } else {
            emit(&self.opts, joined, out);
        }
    }
}

fn new_line(record: &super::Parsed<'_>) -> LogRecord {
    LogRecord {
        at: record.at,
        stream: record.stream,
        text: record.text.to_vec(),
    }
}

fn emit(opts: &ReadOptions, line: LogRecord, out: &mut Vec<LogRecord>) {
    if opts.in_window(line.at) {
        out.push(line);
    }
}

/// For tests: where a tail read of `opts.tail` lines starts (file index, offset).
#[cfg(test)]
pub(super) fn tail_start_of(path: &Path, max_files: u32, opts: &ReadOptions) -> (usize, u64) {
    let files = consistent_snapshot(path, max_files).unwrap();
    tail_start(&files, opts.tail.unwrap(), opts).unwrap()
}
