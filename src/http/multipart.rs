//! `multipart/byteranges` (RFC 9110 section 14.6): the body of a 206 for
//! several ranges.
//!
//! ```text
//!   --BOUNDARY\r\n
//!   Content-Type: text/plain\r\n
//!   Content-Range: bytes 0-9/100\r\n
//!   \r\n
//!   <bytes 0-9>\r\n
//!   --BOUNDARY\r\n ... (a part per range)
//!   --BOUNDARY--\r\n
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::ops::Range;

use bytes::Bytes;

use super::body::{ResponseBody, Segment};
use super::file::{Opened, Prefetch};

/// The layout of a multipart body: part headers and the ranges between.
#[derive(Debug)]
pub(crate) struct Multipart {
    boundary: String,
    pieces: Vec<Piece>,
}

#[derive(Debug)]
enum Piece {
    Text(Bytes),
    Range(Range<u64>),
}

impl Multipart {
    /// The parts for `ranges` (non-empty, inside a file of `len` bytes of
    /// type `content_type`).
    pub(crate) fn new(ranges: &[Range<u64>], len: u64, content_type: &str) -> Self {
        // Random, so that no file can hold it by design.
        let boundary = format!("{:016x}", RandomState::new().build_hasher().finish());
        let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
        for (i, range) in ranges.iter().enumerate() {
            let head = format!(
                "{}--{boundary}\r\nContent-Type: {content_type}\r\n\
                 Content-Range: bytes {}-{}/{len}\r\n\r\n",
                if i == 0 { "" } else { "\r\n" },
                range.start,
                range.end - 1,
            );
            pieces.push(Piece::Text(head.into()));
            pieces.push(Piece::Range(range.clone()));
        }
        pieces.push(Piece::Text(format!("\r\n--{boundary}--\r\n").into()));
        Self { boundary, pieces }
    }

    /// The response's `Content-Type`.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The body's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.len() as u64,
                Piece::Range(range) => range.end - range.start,
            })
            .sum()
    }

    /// The body, a stream per range.
    pub(crate) fn body(
        self,
        opened: &Opened,
        chunk_size: usize,
        prefetch: Prefetch,
    ) -> io::Result<ResponseBody> {
        let segments = self.pieces.into_iter().map(|piece| match piece {
            Piece::Text(text) => Ok(Segment::Bytes(text)),
            Piece::Range(range) => opened.segment(range, chunk_size, prefetch),
        });
        Ok(ResponseBody::from_segments(
            segments.collect::<io::Result<Vec<_>>>()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_counts_part_headers_and_ranges() {
        let multipart = Multipart::new(&[0..10, 20..25], 100, "text/plain");
        let text: usize = multipart
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.len(),
                Piece::Range(_) => 0,
            })
            .sum();
        assert_eq!(multipart.len(), text as u64 + 15);
        assert!(multipart
            .content_type()
            .ends_with(&format!("boundary={}", multipart.boundary)));
        let Piece::Text(first) = &multipart.pieces[0] else {
            panic!("a part starts with its headers");
        };
        assert!(first.starts_with(format!("--{}\r\n", multipart.boundary).as_bytes()));
    }
}
