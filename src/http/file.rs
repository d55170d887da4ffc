//! A file opened for a response: its mapping and its validators.

use std::fs::Metadata;
use std::io;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::HeaderValue;

use super::body::Segment;
use super::conditional::Validators;
use super::resolve::RegularFile;
use super::respond::value;
use super::sendable::Registered;
use crate::{MappedFile, StreamOptions, ViewStream};

/// Where a body's first bytes are faulted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// Here: the caller is on the blocking pool anyway, so the first chunk
    /// goes out without a trip to the prefetcher (a whole small range then
    /// needs none).
    Here,
    /// By the stream's background prefetcher: the caller is a tokio worker.
    Background,
}

/// A regular file, mapped (unless empty), with the validators of the bytes
/// the mapping holds.
#[derive(Debug)]
pub(crate) struct Opened {
    map: Mapped,
    pub(crate) len: u64,
    pub(crate) validators: Validators,
    /// The `ETag` and `Last-Modified` headers of the validators, made once
    /// for all the responses from this file.
    pub(crate) etag: HeaderValue,
    pub(crate) last_modified: Option<HeaderValue>,
    /// Which file, in which version: a later open of the same identity can
    /// answer from this one.
    pub(crate) identity: Identity,
}

/// What a file's bodies come from.
#[derive(Debug)]
enum Mapped {
    /// An empty file: it cannot be mapped, and its bodies are empty anyway.
    Empty,
    /// The file, for one response: each body's stream maps its range, and
    /// releases its pages behind it.
    Own(MappedFile),
    /// The whole file mapped once, for the responses of a cache entry:
    /// each body's stream is a slice of it, with no `mmap`, so a worker
    /// can make one. Registered, so that a `SendfileStream` sends its bytes
    /// with `sendfile`.
    Shared(Registered),
}

/// A file's device, inode, size and modification time: a file replaced or
/// changed on disk has another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_nanos: u128,
}

impl Identity {
    /// The identity of the file `metadata` describes.
    pub(crate) fn of(metadata: &Metadata) -> Self {
        let mtime_nanos = metadata
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_nanos,
        }
    }
}

impl Opened {
    /// Maps `file`, for one response or (with `shared`) for every response
    /// of a cache entry. Blocking: `mmap`.
    pub(crate) fn map(file: &RegularFile, shared: bool) -> io::Result<Self> {
        let RegularFile { file, metadata } = file;
        let map = match metadata.len() {
            0 => None,
            // The descriptor's own file, never its path: the path it was
            // found under may name another file by now.
            // SAFETY: a file server vouches that the files it serves are
            // not changed in place while it serves them (a changed file
            // would mix old and new bytes in one response, whatever the
            // server). Truncation is covered: the body's stream reports it.
            _ => Some(unsafe { MappedFile::from_file(file.try_clone()?)? }),
        };
        // What the mapping holds, should the file have changed since fstat.
        let len = map.as_ref().map_or(0, MappedFile::capacity);
        let map = match map {
            None => Mapped::Empty,
            Some(map) if shared => Mapped::Shared(Registered::new(Arc::new(map.shared_region()?))),
            Some(map) => Mapped::Own(map),
        };
        let identity = Identity {
            len,
            ..Identity::of(metadata)
        };
        // Strong: a new inode, size or modification time is a new tag.
        let etag = format!("\"{:x}-{len:x}-{:x}\"", identity.ino, identity.mtime_nanos);
        let modified = metadata.modified().ok();
        Ok(Self {
            map,
            len,
            etag: value(etag.clone()),
            last_modified: modified.map(|m| value(httpdate::fmt_http_date(m))),
            validators: Validators { etag, modified },
            identity,
        })
    }

    /// A body segment of the bytes of `range` (not empty, inside the
    /// file). Blocking with `Prefetch::Here`, or for a file not `shared`.
    pub(crate) fn segment(
        &self,
        range: Range<u64>,
        chunk_size: usize,
        prefetch: Prefetch,
    ) -> io::Result<Segment> {
        let remaining = range.end - range.start;
        let mut stream = match &self.map {
            Mapped::Empty => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a range of an empty file",
                ))
            }
            Mapped::Own(map) => map.stream(range)?,
            Mapped::Shared(registered) => {
                let whole = registered.region();
                if remaining <= chunk_size as u64 {
                    if let Some(bytes) = whole.resident_bytes(range.clone())? {
                        // One chunk, in memory: no stream needed.
                        return Ok(Segment::Bytes(bytes));
                    }
                }
                ViewStream::over(whole.slice(range), &StreamOptions::new())?
            }
        };
        if prefetch == Prefetch::Here {
            stream.prefetch_blocking(chunk_size as u64)?;
        }
        let chunks = Box::new(stream.chunks(chunk_size));
        Ok(Segment::Chunks { chunks, remaining })
    }
}
