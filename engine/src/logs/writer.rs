//! The writer: the shim's stdout and stderr pumps share one [`LogWriter`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::{highest_rotated, rotated_path, write_timestamp, Stream, MAX_LINE};

/// Room for a record's header (timestamp, stream, tag, spaces) and its newline.
const HEADER_ROOM: usize = 64;

/// Where and how a container's log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The log file (`…/container.log`); its parent directory must exist.
    pub path: PathBuf,
    /// Rotate before a record would take the file past this many bytes; 0 = never.
    pub max_size: u64,
    /// Rotated files kept (`container.log.1` … `.<max_files>`); 0 = truncate the file
    /// instead of keeping it.
    pub max_files: u32,
}

/// Appends CRI records to a container's log, rotating it by size.
///
/// Internally locked: share it between the stdout and stderr pumps with an `Arc` (or
/// scoped threads). Each record is written with one `write(2)` on a file opened in append
/// mode, so a reader sees whole records except, at the very end, one being written.
#[derive(Debug)]
pub struct LogWriter {
    config: LogConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` after a rotation that could not open the new file; reopened on next write.
    file: Option<File>,
    /// Bytes in `file`.
    size: u64,
    /// Highest `n` for which `container.log.<n>` may exist (≤ `max_files`), so that a
    /// rotation costs the files kept, not `max_files`.
    rotated: u32,
    /// The record being written, reused.
    record: Vec<u8>,
}

impl LogWriter {
    /// Opens (or creates, mode 0640) `config.path` for appending.
    pub fn open(config: LogConfig) -> io::Result<LogWriter> {
        let (file, size) = open_log(&config.path)?;
        let rotated = highest_rotated(&config.path, config.max_files)
            .map_err(|e| with_path(e, "list the directory of", &config.path))?;
        Ok(LogWriter {
            config,
            inner: Mutex::new(Inner {
                file: Some(file),
                size,
                rotated,
                record: Vec::with_capacity(MAX_LINE + HEADER_ROOM),
            }),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Reads `pipe` until end of file, writing one record per line: a line longer than
    /// [`MAX_LINE`] becomes partial (`P`) records followed by a final (`F`) one, and a last
    /// line without newline is written as `F`. Uses one fixed buffer.
    ///
    /// A failed write does not stop the pump (the container must never block on a full
    /// pipe because the disk is full): the line is lost, the rest keeps being read, and
    /// the first write error is returned at the end. A read error ends the pump after the
    /// pending bytes are written.
    pub fn pump(&self, stream: Stream, mut pipe: impl Read) -> io::Result<()> {
        // One byte more than a record holds, so a line of exactly MAX_LINE bytes and its
        // newline stay one F record.
        let mut buf = vec![0u8; MAX_LINE + 1];
        let mut len = 0;
        let mut write_error: Option<io::Error> = None;
        let mut emit = |partial: bool, text: &[u8]| {
            if let Err(e) = self.write(stream, partial, text, None) {
                if write_error.is_none() {
                    tracing::warn!(
                        path = %self.config.path.display(),
                        %stream,
                        error = %e,
                        "cannot write container log; lines are lost until it works again"
                    );
                    write_error = Some(e);
                }
            }
        };
        loop {
            let n = match pipe.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if len > 0 {
                        emit(false, &buf[..len]);
                    }
                    return Err(e);
                }
            };
            let end = len + n;
            // Bytes before `len` hold no newline: search only the new ones.
            let mut start = 0;
            let mut search = len;
            while let Some(i) = buf[search..end].iter().position(|&b| b == b'\n') {
                let newline = search + i;
                emit(false, &buf[start..newline]);
                start = newline + 1;
                search = start;
            }
            if start == 0 && end == buf.len() {
                emit(true, &buf[..MAX_LINE]);
                buf.copy_within(MAX_LINE..end, 0);
                len = end - MAX_LINE;
            } else {
                buf.copy_within(start..end, 0);
                len = end - start;
            }
        }
        if len > 0 {
            emit(false, &buf[..len]);
        }
        match write_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes one record: `<at> <stream> <P|F> <text>\n`, rotating first if it would take
    /// a non-empty file past `max_size`. `text` must not hold a newline.
    pub fn write_record(
        &self,
        stream: Stream,
        partial: bool,
        text: &[u8],
        at: DateTime<Utc>,
    ) -> io::Result<()> {
        self.write(stream, partial, text, Some(at))
    }

    /// [`LogWriter::write_record`]; without `at`, stamped with the time under the lock, so
    /// that the pumps' records are in time order in the file.
    fn write(
        &self,
        stream: Stream,
        partial: bool,
        text: &[u8],
        at: Option<DateTime<Utc>>,
    ) -> io::Result<()> {
        if text.contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "log record for {} holds a newline",
                    self.config.path.display()
                ),
            ));
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        let record = &mut inner.record;
        record.clear();
        write_timestamp(record, at.unwrap_or_else(Utc::now));
        record.push(b' ');
        record.extend_from_slice(stream.as_str().as_bytes());
        record.extend_from_slice(if partial { b" P " } else { b" F " });
        record.extend_from_slice(text);
        record.push(b'\n');
        let len = u64::try_from(record.len()).unwrap_or(u64::MAX);

        let max_size = self.config.max_size;
        if max_size > 0 && inner.size > 0 && inner.size.saturating_add(len) > max_size {
            rotate(&self.config, inner)?;
        }
        let file = match inner.file.take() {
            Some(file) => file,
            None => {
                let (file, size) = open_log(&self.config.path)?;
                inner.size = size;
                file
            }
        };
        let file = inner.file.insert(file);
        let result = file.write_all(&inner.record);
        if result.is_err() {
            // Do not leave half a record that the next one would be glued to.
            let _ = file.set_len(inner.size);
        } else {
            inner.size += len;
        }
        // Keep the writer small after a caller's oversized record.
        if inner.record.capacity() > 2 * (MAX_LINE + HEADER_ROOM) {
            inner.record = Vec::with_capacity(MAX_LINE + HEADER_ROOM);
        }
        result
    }
}

/// Opens the log for appending, creating it with mode 0640; returns it and its size.
fn open_log(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| with_path(e, "open", path))?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// Shifts `.n` → `.n+1` (oldest dropped), the log → `.1`, and opens a fresh log; with
/// `max_files` 0 truncates the log instead. Missing files are skipped, so a rotation
/// interrupted half-way is finished by the next one. On failure after the log was
/// renamed, `file` is `None` and the next write opens a new log.
fn rotate(config: &LogConfig, inner: &mut Inner) -> io::Result<()> {
    let path = &config.path;
    if config.max_files == 0 {
        if let Some(f) = &inner.file {
            f.set_len(0).map_err(|e| with_path(e, "truncate", path))?;
        }
        inner.size = 0;
        return Ok(());
    }
    if inner.rotated >= config.max_files {
        let oldest = rotated_path(path, config.max_files);
        ignore_missing(std::fs::remove_file(&oldest))
            .map_err(|e| with_path(e, "remove", &oldest))?;
    }
    let top = inner.rotated.min(config.max_files - 1);
    for n in (1..=top).rev() {
        let from = rotated_path(path, n);
        ignore_missing(std::fs::rename(&from, rotated_path(path, n + 1)))
            .map_err(|e| with_path(e, "rename", &from))?;
    }
    inner.rotated = top + 1;
    ignore_missing(std::fs::rename(path, rotated_path(path, 1)))
        .map_err(|e| with_path(e, "rename", path))?;
    // From here on the old file is `.1`: never write to it again.
    inner.file = None;
    inner.size = 0;
    let (file, size) = open_log(path)?;
    inner.file = Some(file);
    inner.size = size;
    Ok(())
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot {what} container log {}: {e}", path.display()),
    )
}
