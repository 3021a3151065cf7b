//! On-disk encoding. Bodies are encoded with `rmp_serde::to_vec_named`; every checksum is
//! a CRC-32 that covers the sled key of the value (or, in a frame, the record's own
//! sequence number) as well as the body, so that a value found under the wrong key, or
//! a record at the wrong place in a frame, is caught too.
//!
//! - **Format 1** (a checkpoint, and every record written before frames existed): one
//!   value per key, `[1][crc32(key ‖ body): u32 BE][body]`.
//! - **Format 2, a frame** (records written since): the records of one append, up to
//!   [`FRAME_MAX_RECORDS`] or about [`FRAME_MAX_BYTES`] per value, stored under the key of
//!   the frame's **last** sequence number, so that `range(key(seq)..)` starts at the frame
//!   that holds `seq` and the tree still iterates in order:
//!   `[2][count: u32 BE]` then `count` entries `[len: u32 BE][crc32(key(seq) ‖ body): u32
//!   BE][body]`, for `seq = last - count + 1 ..= last`. Each record keeps its own
//!   checksum, so damage inside a frame is cut at the bad record and the records before
//!   it stay good. One sled value per append instead of one per record is what makes
//!   group commit and replay cheap (sled's per-item cost dominates both).
//!
//! Readers accept both formats, so journals written by earlier versions open as before.

use serde::{de::DeserializeOwned, Serialize};

use crate::{JournalError, Result};

/// The format of a single value (checkpoints; records of earlier versions).
pub const FORMAT_V1: u8 = 1;
/// The format of a frame of records.
pub const FORMAT_FRAME: u8 = 2;
const HEADER: usize = 5;
/// `[len][crc]` before each record of a frame.
const ENTRY_HEADER: usize = 8;
/// Most records in one frame.
pub const FRAME_MAX_RECORDS: u32 = 128;
/// A frame is closed once it holds this many bytes (a single larger record gets a frame
/// of its own). Well under sled's blob threshold (a quarter of its 512 KiB segment).
pub const FRAME_MAX_BYTES: usize = 32 * 1024;

/// The sled key of a sequence number: big-endian, so sled iterates in order.
pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a sled key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(body);
    h.finalize()
}

/// Encodes a value for storage under `key`.
pub fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>> {
    let body = rmp_serde::to_vec_named(value).map_err(|e| JournalError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&checksum(key, &body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Builds one frame: records are encoded straight into the frame's buffer (one
/// allocation per frame, not per record).
#[derive(Debug)]
pub struct FrameWriter {
    buf: Vec<u8>,
    count: u32,
    last: u64,
}

/// A position in a [`FrameWriter`].
#[derive(Debug, Clone, Copy)]
pub struct FrameMark {
    len: usize,
    count: u32,
    last: u64,
}

impl FrameMark {
    /// Records in the frame at this position.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl Default for FrameWriter {
    fn default() -> Self {
        FrameWriter::new()
    }
}

impl FrameWriter {
    /// An empty frame.
    pub fn new() -> FrameWriter {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&[FORMAT_FRAME, 0, 0, 0, 0]);
        FrameWriter {
            buf,
            count: 0,
            last: 0,
        }
    }

    /// Adds the record with sequence number `seq` (the frame's records must be
    /// contiguous; the caller assigns them in order).
    pub fn push<T: Serialize>(&mut self, seq: u64, value: &T) -> Result<()> {
        debug_assert!(self.count == 0 || seq == self.last + 1);
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; ENTRY_HEADER]);
        if let Err(e) = rmp_serde::encode::write_named(&mut self.buf, value) {
            self.buf.truncate(start);
            return Err(JournalError::Encode(e.to_string()));
        }
        let body = &self.buf[start + ENTRY_HEADER..];
        let len = u32::try_from(body.len())
            .map_err(|_| JournalError::Encode("a record larger than 4 GiB".into()))?;
        let crc = checksum(&key(seq), body);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.buf[start + 4..start + ENTRY_HEADER].copy_from_slice(&crc.to_be_bytes());
        self.count += 1;
        self.last = seq;
        Ok(())
    }

    /// Records in the frame.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when the frame should be closed before another record is added.
    pub fn is_full(&self) -> bool {
        self.count >= FRAME_MAX_RECORDS || self.buf.len() >= FRAME_MAX_BYTES
    }

    /// True when the frame holds more than a frame should ([`FRAME_MAX_RECORDS`]
    /// records or [`FRAME_MAX_BYTES`] bytes).
    pub fn is_over(&self) -> bool {
        self.count > FRAME_MAX_RECORDS || self.buf.len() > FRAME_MAX_BYTES
    }

    /// Where the frame is now, to go back to with [`FrameWriter::rollback`].
    pub fn mark(&self) -> FrameMark {
        FrameMark {
            len: self.buf.len(),
            count: self.count,
            last: self.last,
        }
    }

    /// Drops the records pushed since `mark`.
    pub fn rollback(&mut self, mark: FrameMark) {
        self.buf.truncate(mark.len);
        self.count = mark.count;
        self.last = mark.last;
    }

    /// The frame's key (its last sequence number) and value. `None` when empty.
    pub fn finish(mut self) -> Option<([u8; 8], Vec<u8>)> {
        if self.count == 0 {
            return None;
        }
        self.buf[1..HEADER].copy_from_slice(&self.count.to_be_bytes());
        Some((key(self.last), self.buf))
    }
}

/// A frame built from records already stored (their raw entries, checksums included):
/// the good prefix of a frame cut in its middle. `entries` is the concatenation of
/// `count` raw entries.
pub fn frame_from_entries(count: u32, entries: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + entries.len());
    out.push(FORMAT_FRAME);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(entries);
    out
}

/// A cursor over the records of one stored value of the events tree: a frame (format
/// 2) or a single record (format 1). It holds positions only; the value's bytes are
/// passed to each call.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The first sequence number the value claims to hold.
    pub first: u64,
    /// The last one (its key).
    pub last: u64,
    single: bool,
    /// Offset of the next entry.
    pos: usize,
    /// Sequence number of the next entry.
    next: u64,
    /// Set after an entry could not be read: nothing more is yielded.
    done: bool,
}

/// Opens a stored events value for reading. Fails when its key or header is unusable
/// (the records it holds cannot even be located).
pub fn frame(key: &[u8], raw: &[u8]) -> std::result::Result<Frame, String> {
    let last = seq_of(key).ok_or_else(|| "malformed key".to_string())?;
    match raw.first() {
        Some(&FORMAT_V1) => Ok(Frame {
            first: last,
            last,
            single: true,
            pos: 0,
            next: last,
            done: false,
        }),
        Some(&FORMAT_FRAME) => {
            if raw.len() < HEADER {
                return Err(format!(
                    "frame is {} bytes, shorter than its header",
                    raw.len()
                ));
            }
            let count = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
            let first = (last + 1)
                .checked_sub(u64::from(count))
                .filter(|_| count > 0)
                .ok_or_else(|| format!("frame under key {last} claims {count} records"))?;
            Ok(Frame {
                first,
                last,
                single: false,
                pos: HEADER,
                next: first,
                done: false,
            })
        }
        Some(other) => Err(format!("unknown value format {other}")),
        None => Err("empty value".into()),
    }
}

impl Frame {
    /// Records the value claims to hold.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The sequence number of the next entry.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The next record: its sequence number and its checked body, or why it cannot be
    /// read (nothing follows an error). `None` at the end of the value.
    pub fn next_entry<'a>(
        &mut self,
        raw: &'a [u8],
    ) -> Option<(u64, std::result::Result<&'a [u8], String>)> {
        let (seq, result) = self.raw_entry(raw)?;
        let result = result.and_then(|entry| {
            if self.single {
                check(&key(seq), entry)
            } else {
                check_entry(seq, entry)
            }
        });
        if result.is_err() {
            self.done = true;
        }
        Some((seq, result))
    }

    /// The next entry's raw bytes (header included), located but not checked: for
    /// skipping records before a starting point, and for moving good entries into a
    /// new frame.
    pub fn raw_entry<'a>(
        &mut self,
        raw: &'a [u8],
    ) -> Option<(u64, std::result::Result<&'a [u8], String>)> {
        // (Bytes after the last entry are not an error: every entry is checked on its
        // own, and a wrong count moves every sequence number, which the checksums catch.)
        if self.done || self.next > self.last {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        if self.single {
            return Some((seq, Ok(raw)));
        }
        let located = raw.get(self.pos..self.pos + ENTRY_HEADER).and_then(|h| {
            let len = usize::try_from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])).ok()?;
            raw.get(self.pos..(self.pos + ENTRY_HEADER).checked_add(len)?)
        });
        match located {
            Some(entry) => {
                self.pos += entry.len();
                Some((seq, Ok(entry)))
            }
            None => {
                self.done = true;
                Some((
                    seq,
                    Err(format!(
                        "record runs past the end of its frame ({} bytes at offset {})",
                        raw.len(),
                        self.pos
                    )),
                ))
            }
        }
    }
}

/// Checks the checksum of a frame's raw entry (as [`Frame::raw_entry`] returns it) for
/// record `seq`; returns its body.
pub fn check_entry(seq: u64, entry: &[u8]) -> std::result::Result<&[u8], String> {
    if entry.len() < ENTRY_HEADER {
        return Err("record shorter than its header".into());
    }
    let stored = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
    let body = &entry[ENTRY_HEADER..];
    let actual = checksum(&key(seq), body);
    if stored == actual {
        Ok(body)
    } else {
        Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ))
    }
}

/// Checks format and checksum without decoding; returns the body.
pub fn check<'a>(key: &[u8], raw: &'a [u8]) -> std::result::Result<&'a [u8], String> {
    if raw.len() < HEADER {
        return Err(format!(
            "value is {} bytes, shorter than its header",
            raw.len()
        ));
    }
    if raw[0] != FORMAT_V1 {
        return Err(format!("unknown value format {}", raw[0]));
    }
    let stored = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
    let body = &raw[HEADER..];
    let actual = checksum(key, body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    Ok(body)
}

/// Checks and decodes a stored value.
pub fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> std::result::Result<T, String> {
    decode_body(check(key, raw)?)
}

/// Decodes a checked body.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> std::result::Result<T, String> {
    rmp_serde::from_slice(body).map_err(|e| format!("undecodable body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_detects_flips_and_wrong_key() {
        let v = ("hello".to_string(), 42u64);
        let raw = encode(&key(7), &v).unwrap();
        let back: (String, u64) = decode(&key(7), &raw).unwrap();
        assert_eq!(back, v);
        assert!(decode::<(String, u64)>(&key(8), &raw).is_err());
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert!(check(&key(7), &bad).is_err(), "flip at byte {i} bit {bit}");
            }
        }
        assert!(check(&key(7), &raw[..raw.len() - 1]).is_err());
        assert!(check(&key(7), &raw[..3]).is_err());
    }

    /// Reads every record of a frame stored under `k`; an error if any is unreadable.
    fn read_all(k: &[u8], raw: &[u8]) -> std::result::Result<Vec<(u64, String)>, String> {
        let mut f = frame(k, raw)?;
        let mut out = Vec::new();
        while let Some((seq, body)) = f.next_entry(raw) {
            out.push((seq, decode_body::<String>(body?)?));
        }
        Ok(out)
    }

    #[test]
    fn frames_roundtrip_and_every_flip_is_caught() {
        let mut w = FrameWriter::new();
        for seq in 5..=7u64 {
            w.push(seq, &format!("record {seq}")).unwrap();
        }
        let (k, raw) = w.finish().unwrap();
        assert_eq!(k, key(7));
        let want: Vec<(u64, String)> = (5..=7).map(|s| (s, format!("record {s}"))).collect();
        assert_eq!(read_all(&k, &raw).unwrap(), want);
        assert!(read_all(&key(8), &raw).is_err(), "under the wrong key");
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert_ne!(
                    read_all(&k, &bad).ok(),
                    Some(want.clone()),
                    "flip at byte {i} bit {bit}"
                );
            }
        }
        for cut in 0..raw.len() {
            assert!(read_all(&k, &raw[..cut]).is_err(), "truncated to {cut}");
        }
        assert!(FrameWriter::new().finish().is_none());
    }
}
