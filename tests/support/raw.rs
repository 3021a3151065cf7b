//! HTTP by hand over a blocking unix socket, for what the typed client hides: reading
//! raw bytes as they arrive, not reading at all (a slow subscriber), chunked framing and
//! connection close.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A request sent on its own connection (`Connection: close`), and what has been read
/// of the answer so far.
pub struct RawStream {
    stream: UnixStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawStream {
    /// Connects to `socket` and sends `GET path` with extra `headers`.
    pub fn get(socket: &Path, path: &str, headers: &[(&str, &str)]) -> RawStream {
        Self::request(socket, "GET", path, headers, None)
    }

    /// Connects to `socket` and sends a request.
    pub fn request(
        socket: &Path,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> RawStream {
        let mut stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: berthd\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        stream.write_all(&bytes).expect("writing the request");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("setting a read timeout");
        RawStream {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads whatever arrives within `wait`; returns false once at EOF.
    pub fn read_some(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 64 * 1024];
        while !self.eof {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => panic!("reading the raw stream: {e}"),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        !self.eof
    }

    /// Reads until `needle` occurs `times` times in what was read; false if that did not
    /// happen within `timeout` (or the stream ended first).
    pub fn read_until(&mut self, needle: &str, times: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if count(&self.buf, needle.as_bytes()) >= times {
                return true;
            }
            if self.eof || Instant::now() >= deadline {
                return false;
            }
            self.read_some(Duration::from_millis(50));
        }
    }

    /// Reads until the server closes the connection; panics after `timeout`.
    pub fn read_to_end(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.read_some(Duration::from_millis(100)) {
            assert!(
                Instant::now() < deadline,
                "the server did not close the connection within {timeout:?}; read so far:\n{}",
                tail(&self.buf, 2000)
            );
        }
    }

    /// True once the server closed the connection.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Everything read so far, as received.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The response as read so far: status line, headers, de-chunked body.
    pub fn response(&self) -> RawResponse {
        parse_response(&self.buf)
    }
}

/// A parsed raw response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
    /// For a chunked body: whether its last (empty) chunk arrived.
    pub complete: bool,
}

impl RawResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || hay.len() < needle.len() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn tail(buf: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&buf[buf.len().saturating_sub(n)..]).into_owned()
}

fn parse_response(buf: &[u8]) -> RawResponse {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in:\n{}", tail(buf, 2000)));
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw_body = &buf[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let (body, complete) = if chunked {
        dechunk(raw_body)
    } else {
        (raw_body.to_vec(), true)
    };
    RawResponse {
        status,
        headers,
        body,
        complete,
    }
}

/// Decodes a chunked body; returns the data and whether the terminating chunk was seen.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        raw = &raw[line_end + 2..];
        if size == 0 {
            return (out, true);
        }
        if raw.len() < size + 2 {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            return (out, false);
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// One block of a server-sent event stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseBlock {
    /// `id:`.
    pub id: Option<u64>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines joined by newlines.
    pub data: String,
    /// Comment lines (`: ...`), without the colon.
    pub comments: Vec<String>,
}

/// Splits an event-stream body into blocks (a trailing incomplete block is dropped).
pub fn parse_sse(body: &str) -> Vec<SseBlock> {
    let mut blocks = Vec::new();
    let complete = match body.rfind("\n\n") {
        Some(end) => &body[..end],
        None => return blocks,
    };
    for raw in complete.split("\n\n") {
        let mut b = SseBlock::default();
        let mut data = Vec::new();
        for line in raw.split('\n') {
            if let Some(c) = line.strip_prefix(':') {
                b.comments.push(c.trim().to_string());
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => b.id = Some(value.parse().expect("numeric event id")),
                "event" => b.event = Some(value.to_string()),
                "data" => data.push(value),
                _ => {}
            }
        }
        b.data = data.join("\n");
        blocks.push(b);
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        let (body, done) = dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(body, b"abcde");
        assert!(done);
        let (body, done) = dechunk(b"3\r\nabc\r\n5\r\nde");
        assert_eq!(body, b"abcde");
        assert!(!done);
    }

    #[test]
    fn parses_sse() {
        let blocks = parse_sse("retry: 2000\n: hello\n\nid: 3\nevent: x\ndata: {}\n\nid: 4");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].comments, ["hello"]);
        assert_eq!(blocks[1].id, Some(3));
        assert_eq!(blocks[1].event.as_deref(), Some("x"));
    }
}
