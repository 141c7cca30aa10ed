//! Counting the 4xx answers that Pingora writes before the product sees a
//! request.
//!
//! Pingora refuses some requests itself: a malformed request line or header,
//! a duplicate `Host`, a `Host` with userinfo or one that disagrees with an
//! absolute-form target get `400`, `CONNECT` gets `405`, and on HTTP/2 an
//! `:authority` that disagrees with `Host` (or carries userinfo) gets a bare
//! `400` HEADERS frame. None of these reach a `ProxyHttp` hook, yet they are
//! 4xx that the product sends, so `requests_total{outcome="bad_request"}`
//! must count them (docs/metrics.md). The guard sees every byte written to a
//! client connection, so it recognises them on the wire:
//!
//! * **HTTP/1**: a response that starts while no request is between the
//!   `early_request_filter` and `logging` hooks (the guard's HEAD and IDLE
//!   phases) was written by Pingora, not through the hooks; its status line
//!   says whether it is a 4xx. Everything the product writes, it writes in
//!   the BODY phase and counts itself.
//! * **HTTP/2**: a HEADERS frame that ends its stream and holds nothing but
//!   one indexed `:status` (HPACK static table: `0x8c` is 400, `0x8d` is
//!   404) is Pingora's refusal: every answer the product or a backend sends
//!   has at least a `date` field too. Frames are followed across writes with
//!   a 9-byte header parser; their payloads are skipped, not copied.
//!
//! The cost is a compare per write on HTTP/1 and a frame-header walk on
//! HTTP/2; no allocation.

use crate::metrics::{enabled, outcomes};

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const HEADERS: u8 = 0x1;

/// What the guard has seen of the responses on one connection.
#[derive(Debug, Default)]
pub(crate) struct ReplyWatch {
    /// HTTP/1: the first bytes of a response written outside the hooks.
    status_line: [u8; 12],
    status_len: u8,
    /// HTTP/2: bytes of the current frame header read so far.
    frame: [u8; 9],
    frame_len: u8,
    /// HTTP/2: payload bytes of the current frame still to skip.
    skip: usize,
    /// HTTP/2: the current frame is a one-byte, stream-ending HEADERS
    /// frame whose byte is next.
    bare_status: bool,
}

/// Is this `:status` byte (an HPACK static-table index) a 4xx?
fn indexed_4xx(b: u8) -> bool {
    matches!(b, 0x8c | 0x8d)
}

/// Counts one 4xx answer written outside the hooks.
pub(crate) fn count() {
    if enabled() {
        outcomes().bad_request.inc();
    }
}

impl ReplyWatch {
    /// HTTP/1 bytes written while a request is being handled by the hooks:
    /// the next response outside them starts afresh.
    pub(crate) fn in_request(&mut self) {
        self.status_len = 0;
    }

    /// HTTP/1 bytes written while no request is in the hooks; the status
    /// of a 4xx answer they start (once per answer).
    pub(crate) fn outside_request(&mut self, bytes: &[u8]) -> Option<u16> {
        let have = self.status_len as usize;
        if have >= self.status_line.len() {
            return None;
        }
        let take = bytes.len().min(self.status_line.len() - have);
        self.status_line[have..have + take].copy_from_slice(&bytes[..take]);
        self.status_len = (have + take) as u8;
        if self.status_len as usize == self.status_line.len() {
            let l = &self.status_line;
            if (l.starts_with(b"HTTP/1.1 ") || l.starts_with(b"HTTP/1.0 "))
                && l[9] == b'4'
                && l[10].is_ascii_digit()
                && l[11].is_ascii_digit()
            {
                return Some(
                    u16::from(l[9] - b'0') * 100
                        + u16::from(l[10] - b'0') * 10
                        + u16::from(l[11] - b'0'),
                );
            }
        }
        None
    }

    /// HTTP/2 frames written on the connection (after the preface); how
    /// many bare 4xx answers they hold.
    pub(crate) fn h2(&mut self, mut bytes: &[u8]) -> usize {
        let mut found = 0;
        while !bytes.is_empty() {
            if self.bare_status {
                self.bare_status = false;
                self.skip -= 1;
                if indexed_4xx(bytes[0]) {
                    found += 1;
                }
                bytes = &bytes[1..];
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let have = self.frame_len as usize;
            let take = (9 - have).min(bytes.len());
            self.frame[have..have + take].copy_from_slice(&bytes[..take]);
            self.frame_len += take as u8;
            bytes = &bytes[take..];
            if self.frame_len == 9 {
                self.frame_len = 0;
                let f = &self.frame;
                let len = (usize::from(f[0]) << 16) | (usize::from(f[1]) << 8) | usize::from(f[2]);
                let flags = f[4];
                self.skip = len;
                self.bare_status = f[3] == HEADERS
                    && len == 1
                    && flags & (END_STREAM | END_HEADERS) == END_STREAM | END_HEADERS;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http1_4xx_split_over_writes_is_seen_once_and_a_2xx_not_at_all() {
        let mut w = ReplyWatch::default();
        assert_eq!(w.outside_request(b"HTTP/1.1 4"), None);
        assert_eq!(w.outside_request(b"00 Bad Request\r\n\r\n"), Some(400));
        assert_eq!(
            w.outside_request(b"HTTP/1.1 400 again on the same connection"),
            None
        );
        w.in_request();
        assert_eq!(w.outside_request(b"HTTP/1.1 200 OK\r\n"), None);
        w.in_request();
        assert_eq!(
            w.outside_request(b"HTTP/1.1 405 Method Not Allowed\r\n"),
            Some(405)
        );
    }

    #[test]
    fn an_h2_bare_400_headers_frame_is_seen_across_any_split() {
        // SETTINGS (6 bytes), then HEADERS len 1 END_STREAM|END_HEADERS
        // on stream 1 with `:status: 400`, then a DATA frame whose payload
        // happens to hold a HEADERS-looking byte run.
        let mut wire = vec![0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        wire.extend_from_slice(&[0, 0, 1, 0x1, 0x5, 0, 0, 0, 1, 0x8c]);
        wire.extend_from_slice(&[0, 0, 10, 0x0, 0x1, 0, 0, 0, 3]);
        wire.extend_from_slice(&[0, 0, 1, 0x1, 0x5, 0, 0, 0, 1, 0x8c]);
        for split in 0..wire.len() {
            let mut w = ReplyWatch::default();
            let n = w.h2(&wire[..split]) + w.h2(&wire[split..]);
            assert_eq!(n, 1, "split at {split}");
        }
        // A full answer (`:status: 200`, then more fields) is not counted.
        let mut w = ReplyWatch::default();
        assert_eq!(w.h2(&[0, 0, 3, 0x1, 0x4, 0, 0, 0, 1, 0x88, 0x0f, 0x10]), 0);
        assert_eq!(w.h2(&[0, 0, 1, 0x1, 0x5, 0, 0, 0, 3, 0x88]), 0);
    }
}
