use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use super::*;

/// A fixed instant plus `ms` milliseconds.
fn ts(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 17, 49, 7).unwrap() + chrono::Duration::milliseconds(ms)
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("container.log")
    }

    fn writer(&self, max_size: u64, max_files: u32) -> LogWriter {
        LogWriter::open(LogConfig {
            path: self.log(),
            max_size,
            max_files,
        })
        .unwrap()
    }

    /// Names of the files in the directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

/// The raw records of a file: (stream, tag, text).
fn raw_records(path: &Path) -> Vec<(String, String, Vec<u8>)> {
    let data = fs::read(path).unwrap();
    assert!(data.is_empty() || data.ends_with(b"\n"));
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut fields = line.splitn(4, |&b| b == b' ');
            let time = std::str::from_utf8(fields.next().unwrap()).unwrap();
            assert_eq!(time.len(), 30, "{time}");
            assert!(time.ends_with('Z'));
            assert_eq!(time.as_bytes()[19], b'.');
            DateTime::parse_from_rfc3339(time).unwrap();
            let stream = String::from_utf8(fields.next().unwrap().to_vec()).unwrap();
            let tag = String::from_utf8(fields.next().unwrap().to_vec()).unwrap();
            (stream, tag, fields.next().unwrap().to_vec())
        })
        .collect()
}

fn texts(records: &[LogRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.text.clone()).unwrap())
        .collect()
}

/// A pipe stand-in that hands out at most `chunk` bytes per read.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    reads: u64,
    pause_every: u64,
}

impl Trickle {
    fn new(data: Vec<u8>, chunk: usize) -> Trickle {
        Trickle {
            data,
            pos: 0,
            chunk,
            reads: 0,
            pause_every: 0,
        }
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.reads == self.pause_every {
            self.reads = 0;
            std::thread::sleep(Duration::from_millis(1));
        } else {
            std::thread::yield_now();
        }
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn all() -> ReadOptions {
    ReadOptions::default()
}

#[test]
fn pump_writes_one_final_record_per_line() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    writer
        .pump(Stream::Stderr, &b"a\nb\nlast-no-newline"[..])
        .unwrap();
    let raw = raw_records(&dir.log());
    let expected: Vec<(String, String, Vec<u8>)> = ["a", "b", "last-no-newline"]
        .iter()
        .map(|t| ("stderr".into(), "F".into(), t.as_bytes().to_vec()))
        .collect();
    assert_eq!(raw, expected);
    let mode = fs::metadata(dir.log()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);

    let records = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(texts(&records), ["a", "b", "last-no-newline"]);
    assert!(records.iter().all(|r| r.stream == Stream::Stderr));
}

#[test]
fn pump_keeps_empty_lines_and_exact_max_line() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    let mut data = b"\n\nx\n".to_vec();
    data.extend(vec![b'm'; MAX_LINE]);
    data.push(b'\n');
    writer.pump(Stream::Stdout, &data[..]).unwrap();
    let tags: Vec<String> = raw_records(&dir.log())
        .into_iter()
        .map(|(_, tag, _)| tag)
        .collect();
    assert_eq!(tags, ["F", "F", "F", "F"]);
    let records = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].text, b"");
    assert_eq!(records[2].text, b"x");
    assert_eq!(records[3].text.len(), MAX_LINE);
}

#[test]
fn long_line_is_written_as_partial_records_and_read_joined() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    let line: Vec<u8> = (0..40 * 1024)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[i % 26])
        .collect();
    let mut data = line.clone();
    data.extend_from_slice(b"\nshort\n");
    writer
        .pump(Stream::Stdout, Trickle::new(data, 3000))
        .unwrap();

    let raw = raw_records(&dir.log());
    let shape: Vec<(String, usize)> = raw
        .iter()
        .map(|(_, t, text)| (t.clone(), text.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("P".to_string(), MAX_LINE),
            ("P".to_string(), MAX_LINE),
            ("F".to_string(), 40 * 1024 - 2 * MAX_LINE),
            ("F".to_string(), 5)
        ]
    );
    let records = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].text, line);
    assert_eq!(records[1].text, b"short");
    // The joined line carries the time of its first part.
    let first = DateTime::parse_from_rfc3339(
        std::str::from_utf8(&fs::read(dir.log()).unwrap()[..30]).unwrap(),
    )
    .unwrap();
    assert_eq!(records[0].at, first);
}

#[test]
fn partial_records_join_per_stream() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    writer
        .write_record(Stream::Stdout, true, b"hel", ts(0))
        .unwrap();
    writer
        .write_record(Stream::Stderr, false, b"oops", ts(1))
        .unwrap();
    writer
        .write_record(Stream::Stdout, true, b"lo ", ts(2))
        .unwrap();
    writer
        .write_record(Stream::Stdout, false, b"world", ts(3))
        .unwrap();
    writer
        .write_record(Stream::Stderr, true, b"unfinished", ts(4))
        .unwrap();

    let records = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(texts(&records), ["oops", "hello world", "unfinished"]);
    assert_eq!(records[1].at, ts(0));
    assert_eq!(records[1].stream, Stream::Stdout);

    let stdout_only = ReadOptions {
        stderr: false,
        ..all()
    };
    assert_eq!(
        texts(&read(&dir.log(), 1, &stdout_only).unwrap()),
        ["hello world"]
    );

    // follow keeps the unfinished line until it is finished.
    let (initial, mut follower) = follow(&dir.log(), 1, &all()).unwrap();
    assert_eq!(texts(&initial), ["oops", "hello world"]);
    writer
        .write_record(Stream::Stderr, false, b" line", ts(5))
        .unwrap();
    let next = follower.next_batch(Duration::from_secs(5)).unwrap();
    assert_eq!(texts(&next), ["unfinished line"]);
    assert_eq!(next[0].at, ts(4));
}

#[test]
fn write_record_refuses_a_newline() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    let err = writer
        .write_record(Stream::Stdout, false, b"a\nb", ts(0))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(fs::metadata(dir.log()).unwrap().len(), 0);
}

#[test]
fn concurrent_pumps_keep_records_whole_and_ordered() {
    let dir = Dir::new();
    let writer = Arc::new(dir.writer(0, 1));
    let make = |name: &str| -> (Vec<u8>, Vec<String>) {
        let mut data = Vec::new();
        let mut lines = Vec::new();
        for i in 0..2000 {
            let line = if i % 97 == 0 {
                format!("{name}-{i}-{}", "x".repeat(20_000 + i))
            } else {
                format!("{name}-{i}")
            };
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
            lines.push(line);
        }
        (data, lines)
    };
    let (out_data, out_lines) = make("out");
    let (err_data, err_lines) = make("err");
    std::thread::scope(|s| {
        let w = Arc::clone(&writer);
        s.spawn(move || w.pump(Stream::Stdout, Trickle::new(out_data, 700)).unwrap());
        let w = Arc::clone(&writer);
        s.spawn(move || {
            w.pump(Stream::Stderr, Trickle::new(err_data, 1100))
                .unwrap()
        });
    });

    // Every raw record is intact (raw_records checks the timestamp of each).
    let raw = raw_records(&dir.log());
    let mut interleaved = false;
    for pair in raw.windows(2) {
        interleaved |= pair[0].0 != pair[1].0;
    }
    assert!(interleaved, "the test should interleave the streams");
    let records = read(&dir.log(), 1, &all()).unwrap();
    let of = |stream: Stream| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.stream == stream)
            .map(|r| String::from_utf8(r.text.clone()).unwrap())
            .collect()
    };
    assert_eq!(of(Stream::Stdout), out_lines);
    assert_eq!(of(Stream::Stderr), err_lines);
}

fn write_numbered(writer: &LogWriter, range: std::ops::Range<i64>) {
    for i in range {
        writer
            .write_record(
                Stream::Stdout,
                false,
                format!("line-{i:05}").as_bytes(),
                ts(i),
            )
            .unwrap();
    }
}

fn numbered(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("line-{i:05}")).collect()
}

#[test]
fn rotation_keeps_max_files_and_readers_see_survivors_in_order() {
    let dir = Dir::new();
    // Each record is 30 + 7 + 3 + 10 + 1 = 51 bytes: 19 per file.
    for i in 0..500 {
        // A writer reopened (a new shim) carries on with the files there.
        let writer = dir.writer(1000, 3);
        write_numbered(&writer, i..i + 1);
        let files = dir.files();
        assert!(files.len() <= 4, "{files:?}");
    }
    assert_eq!(
        dir.files(),
        [
            "container.log",
            "container.log.1",
            "container.log.2",
            "container.log.3"
        ]
    );
    for name in dir.files() {
        assert!(fs::metadata(dir.dir.path().join(name)).unwrap().len() <= 1000);
    }

    let records = read(&dir.log(), 3, &all()).unwrap();
    let first: i64 = texts(&records)[0][5..].parse().unwrap();
    assert_eq!(texts(&records), numbered(first..500));
    assert!(records.len() >= 3 * 19);

    // Asking for fewer files than exist reads only those.
    let fewer = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(
        fewer.len(),
        raw_records(&dir.log()).len() + raw_records(&dir.dir.path().join("container.log.1")).len()
    );

    for n in [0, 1, 5, 19, 20, 45, 70, 1000] {
        let opts = ReadOptions {
            tail: Some(n),
            ..all()
        };
        let tail = read(&dir.log(), 3, &opts).unwrap();
        let from = (500 - i64::try_from(n).unwrap()).max(first);
        assert_eq!(texts(&tail), numbered(from..500), "tail {n}");
    }

    let since = ReadOptions {
        since: Some(ts(first + 5)),
        ..all()
    };
    assert_eq!(
        texts(&read(&dir.log(), 3, &since).unwrap()),
        numbered(first + 5..500)
    );
    let window = ReadOptions {
        since: Some(ts(first + 5)),
        until: Some(ts(first + 30)),
        tail: Some(10),
        ..all()
    };
    assert_eq!(
        texts(&read(&dir.log(), 3, &window).unwrap()),
        numbered(first + 21..first + 31)
    );
    let since_and_tail = ReadOptions {
        since: Some(ts(495)),
        tail: Some(50),
        ..all()
    };
    assert_eq!(
        texts(&read(&dir.log(), 3, &since_and_tail).unwrap()),
        numbered(495..500)
    );
}

#[test]
fn rotation_with_no_kept_files_truncates() {
    let dir = Dir::new();
    let writer = dir.writer(1000, 0);
    write_numbered(&writer, 0..50);
    assert_eq!(dir.files(), ["container.log"]);
    assert!(fs::metadata(dir.log()).unwrap().len() <= 1000);
    let records = read(&dir.log(), 0, &all()).unwrap();
    assert_eq!(texts(&records), numbered(38..50));
}

#[test]
fn tail_joins_a_line_split_across_rotated_files() {
    let dir = Dir::new();
    // Every 16 KiB record goes to a file of its own.
    let writer = dir.writer(20_000, 10);
    let line = vec![b'z'; 3 * MAX_LINE + 10];
    let mut data = b"before\n".to_vec();
    data.extend_from_slice(&line);
    data.extend_from_slice(b"\nafter\n");
    writer.pump(Stream::Stdout, &data[..]).unwrap();
    assert_eq!(dir.files().len(), 3, "{:?}", dir.files());
    for n in 1..=3 {
        let opts = ReadOptions {
            tail: Some(n),
            ..all()
        };
        let records = read(&dir.log(), 10, &opts).unwrap();
        assert_eq!(records.len(), n);
        if n >= 2 {
            assert_eq!(records[records.len() - 2].text, line);
        }
        if n == 3 {
            assert_eq!(records[0].text, b"before");
        }
    }
}

#[test]
fn tail_reads_only_the_end_of_a_big_file() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    let filler = vec![b'f'; 1000];
    for i in 0..20_000 {
        writer
            .write_record(Stream::Stdout, false, &filler, ts(i))
            .unwrap();
    }
    write_numbered(&writer, 20_000..20_010);
    let size = fs::metadata(dir.log()).unwrap().len();
    assert!(size > 20_000_000);
    let opts = ReadOptions {
        tail: Some(10),
        ..all()
    };
    let (start_file, start) = super::reader::tail_start_of(&dir.log(), 1, &opts);
    assert_eq!(start_file, 0);
    assert_eq!(size - start, 10 * 51);
    assert_eq!(
        texts(&read(&dir.log(), 1, &opts).unwrap()),
        numbered(20_000..20_010)
    );
}

#[test]
fn malformed_lines_are_skipped() {
    let dir = Dir::new();
    let mut content = Vec::new();
    content.extend_from_slice(b"garbage\n");
    content.extend_from_slice(b"\n");
    content.extend_from_slice(b"2026-13-28T17:49:07.000000000Z stdout F bad month\n");
    content.extend_from_slice(b"2026-11-28T17:49:07.000000000Z stdxxx F bad stream\n");
    content.extend_from_slice(b"2026-11-28T17:49:07.000000000Z stdout X bad tag\n");
    content.extend_from_slice(b"2026-11-28T17:49:07.000000000Z stdout\n");
    content.extend_from_slice(b"2026-11-28T17:49:07.5Z stdout F short fraction\n");
    content.extend_from_slice(b"2026-11-28T17:49:08.000000000Z stderr F:x tags\n");
    content.extend_from_slice(b"2026-11-28T17:49:09.000000000Z stdout F\n");
    content.extend_from_slice(b"\xff\xfe binary\n");
    content.extend_from_slice(b"2026-11-28T17:49:10.000000000Z stdout F end \xff\n");
    fs::write(dir.log(), &content).unwrap();

    let records = read(&dir.log(), 1, &all()).unwrap();
    assert_eq!(
        records.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
        [
            b"short fraction".to_vec(),
            b"tags".to_vec(),
            b"".to_vec(),
            b"end \xff".to_vec()
        ]
    );
    let (_, follower) = follow(&dir.log(), 1, &all()).unwrap();
    assert_eq!(follower.skipped(), 7);
    let opts = ReadOptions {
        tail: Some(2),
        ..all()
    };
    assert_eq!(read(&dir.log(), 1, &opts).unwrap().len(), 2);
}

#[test]
fn torn_record_is_never_returned_half() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    writer
        .write_record(Stream::Stdout, false, b"whole", ts(0))
        .unwrap();
    let record = b"2026-11-28T17:49:08.000000000Z stdout F the rest of it\n";
    let mut file = OpenOptions::new().append(true).open(dir.log()).unwrap();
    file.write_all(&record[..20]).unwrap();

    assert_eq!(texts(&read(&dir.log(), 1, &all()).unwrap()), ["whole"]);
    let tail = ReadOptions {
        tail: Some(1),
        ..all()
    };
    assert_eq!(texts(&read(&dir.log(), 1, &tail).unwrap()), ["whole"]);
    let (initial, mut follower) = follow(&dir.log(), 1, &tail).unwrap();
    assert_eq!(texts(&initial), ["whole"]);
    assert!(follower
        .next_batch(Duration::from_millis(120))
        .unwrap()
        .is_empty());
    file.write_all(&record[20..40]).unwrap();
    assert!(follower
        .next_batch(Duration::from_millis(120))
        .unwrap()
        .is_empty());
    file.write_all(&record[40..]).unwrap();
    let next = follower.next_batch(Duration::from_secs(5)).unwrap();
    assert_eq!(texts(&next), ["the rest of it"]);
    assert!(follower
        .next_batch(Duration::from_millis(60))
        .unwrap()
        .is_empty());
    assert_eq!(follower.skipped(), 0);

    // tail 0 follows from the end.
    let none = ReadOptions {
        tail: Some(0),
        ..all()
    };
    let (initial, mut follower) = follow(&dir.log(), 1, &none).unwrap();
    assert!(initial.is_empty());
    writer
        .write_record(Stream::Stdout, false, b"new", ts(9))
        .unwrap();
    assert_eq!(
        texts(&follower.next_batch(Duration::from_secs(5)).unwrap()),
        ["new"]
    );
}

#[test]
fn missing_log_reads_empty_and_follows_once_created() {
    let dir = Dir::new();
    assert!(read(&dir.log(), 3, &all()).unwrap().is_empty());
    let (initial, mut follower) = follow(&dir.log(), 3, &all()).unwrap();
    assert!(initial.is_empty());
    assert!(follower
        .next_batch(Duration::from_millis(60))
        .unwrap()
        .is_empty());
    let writer = dir.writer(0, 3);
    write_numbered(&writer, 0..3);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 3 && Instant::now() < deadline {
        got.extend(follower.next_batch(Duration::from_millis(200)).unwrap());
    }
    assert_eq!(texts(&got), numbered(0..3));
}

/// Lines for the follow tests: numbered, some longer than a record.
fn follow_lines(count: usize) -> (Vec<u8>, Vec<String>) {
    let mut data = Vec::new();
    let mut lines = Vec::new();
    for i in 0..count {
        let line = if i % 211 == 0 {
            format!("line-{i}-{}", "y".repeat(MAX_LINE + 100 + i))
        } else {
            format!("line-{i}")
        };
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        lines.push(line);
    }
    (data, lines)
}

fn collect(follower: &mut Follower, mut got: Vec<String>, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want && Instant::now() < deadline {
        let batch = follower.next_batch(Duration::from_millis(200)).unwrap();
        got.extend(texts(&batch));
    }
    // Nothing more comes.
    got.extend(texts(
        &follower.next_batch(Duration::from_millis(100)).unwrap(),
    ));
    got
}

#[test]
fn follower_gets_every_line_once_across_rotations() {
    let dir = Dir::new();
    let writer = Arc::new(dir.writer(4096, 10_000));
    let (data, lines) = follow_lines(3000);
    let (initial, mut follower) = follow(&dir.log(), 10_000, &all()).unwrap();
    assert!(initial.is_empty());
    let w = Arc::clone(&writer);
    let pump = std::thread::spawn(move || {
        let mut pipe = Trickle::new(data, 200);
        pipe.pause_every = 20;
        w.pump(Stream::Stdout, pipe).unwrap();
    });
    let got = collect(&mut follower, Vec::new(), lines.len());
    pump.join().unwrap();
    assert!(dir.files().len() > 20, "the test should rotate");
    assert_eq!(got.len(), lines.len());
    assert!(got == lines, "lines lost, repeated or out of order");
    assert_eq!(follower.skipped(), 0);
}

#[test]
fn follow_opened_while_writing_continues_exactly_after_its_first_read() {
    for tail in [None, Some(5)] {
        let dir = Dir::new();
        let writer = Arc::new(dir.writer(4096, 10_000));
        let (data, lines) = follow_lines(2000);
        let w = Arc::clone(&writer);
        let pump = std::thread::spawn(move || {
            let mut pipe = Trickle::new(data, 150);
            pipe.pause_every = 10;
            w.pump(Stream::Stdout, pipe).unwrap();
        });
        // Let some lines and rotations happen first.
        let deadline = Instant::now() + Duration::from_secs(10);
        while dir.files().len() < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let opts = ReadOptions { tail, ..all() };
        let (initial, mut follower) = follow(&dir.log(), 10_000, &opts).unwrap();
        let initial = texts(&initial);
        assert!(!initial.is_empty());
        let first = lines.iter().position(|l| *l == initial[0]).unwrap();
        if let Some(n) = tail {
            assert!(initial.len() <= n);
        }
        let got = collect(&mut follower, initial, lines.len() - first);
        pump.join().unwrap();
        assert!(
            got == lines[first..],
            "tail {tail:?}: lines lost, repeated or out of order"
        );
    }
}

#[test]
fn follower_sees_truncation_without_kept_files() {
    let dir = Dir::new();
    let writer = dir.writer(1000, 0);
    write_numbered(&writer, 0..15);
    let (initial, mut follower) = follow(&dir.log(), 0, &all()).unwrap();
    assert_eq!(initial.len(), 15);
    // 19 records fill the file: the 20th truncates it.
    write_numbered(&writer, 15..21);
    let got = collect(&mut follower, Vec::new(), 2);
    // The lines written between the last poll and the truncation are lost.
    assert_eq!(got, numbered(19..21));
}

#[test]
fn pump_keeps_draining_when_writes_fail() {
    let dir = Dir::new();
    // A directory where the rotated file should go makes every rotation fail.
    let blocker = dir.dir.path().join("container.log.1");
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("x"), b"").unwrap();
    let writer = dir.writer(100, 1);
    let data: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line-{i:05}\n").into_bytes())
        .collect();
    let err = writer.pump(Stream::Stdout, &data[..]).unwrap_err();
    assert!(err.to_string().contains("container.log.1"), "{err}");
    assert_eq!(texts(&read(&dir.log(), 0, &all()).unwrap()), ["line-00000"]);

    fs::remove_dir_all(&blocker).unwrap();
    writer
        .write_record(Stream::Stdout, false, b"again", ts(0))
        .unwrap();
    assert_eq!(
        texts(&read(&dir.log(), 1, &all()).unwrap()),
        ["line-00000", "again"]
    );
}

#[test]
fn overlong_garbage_is_skipped() {
    let dir = Dir::new();
    let writer = dir.writer(0, 1);
    write_numbered(&writer, 0..2);
    let mut file = OpenOptions::new().append(true).open(dir.log()).unwrap();
    file.write_all(&vec![b'g'; MAX_JOINED + 10]).unwrap();
    file.write_all(b"\n").unwrap();
    write_numbered(&writer, 2..4);
    assert_eq!(texts(&read(&dir.log(), 1, &all()).unwrap()), numbered(0..4));
    for n in [1, 2, 3, 4] {
        let opts = ReadOptions {
            tail: Some(n),
            ..all()
        };
        let from = 4 - i64::try_from(n).unwrap();
        assert_eq!(
            texts(&read(&dir.log(), 1, &opts).unwrap()),
            numbered(from..4)
        );
    }
    let (_, follower) = follow(&dir.log(), 1, &all()).unwrap();
    assert_eq!(follower.skipped(), 1);
}

#[test]
fn format_line_with_and_without_timestamps() {
    let rec = LogRecord {
        at: ts(123) + chrono::Duration::nanoseconds(456_789),
        stream: Stream::Stdout,
        text: b"hi".to_vec(),
    };
    assert_eq!(format_line(&rec, false), b"hi\n");
    assert_eq!(
        format_line(&rec, true),
        b"2026-11-28T17:49:07.123456789Z hi\n"
    );
    assert_eq!(Stream::Stderr.as_str(), "stderr");
    assert_eq!(
        serde_json::to_string(&Stream::Stdout).unwrap(),
        "\"stdout\""
    );
}
