//! A file opened for a response: its mapping and its validators.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::time::UNIX_EPOCH;

use super::body::Segment;
use super::conditional::Validators;
use crate::MappedFile;

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
    map: Option<MappedFile>,
    pub(crate) len: u64,
    pub(crate) validators: Validators,
}

impl Opened {
    /// Maps `file`. Blocking: `fstat` and `mmap`.
    pub(crate) fn map(file: &File) -> io::Result<Self> {
        let metadata = file.metadata()?;
        let map = match metadata.len() {
            // An empty file cannot be mapped; its body is empty anyway.
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
        let modified = metadata.modified().ok();
        let nanos = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        // Strong: a new inode, size or modification time is a new tag.
        let etag = format!("\"{:x}-{len:x}-{nanos:x}\"", metadata.ino());
        Ok(Self {
            map,
            len,
            validators: Validators { etag, modified },
        })
    }

    /// A body segment of the bytes of `range` (not empty, inside the
    /// file). Blocking with `Prefetch::Here`.
    pub(crate) fn segment(
        &self,
        range: Range<u64>,
        chunk_size: usize,
        prefetch: Prefetch,
    ) -> io::Result<Segment> {
        let Some(map) = &self.map else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a range of an empty file",
            ));
        };
        let remaining = range.end - range.start;
        let mut stream = map.stream(range)?;
        if prefetch == Prefetch::Here {
            stream.prefetch_blocking(chunk_size as u64)?;
        }
        let chunks = Box::new(stream.chunks(chunk_size));
        Ok(Segment::Chunks { chunks, remaining })
    }
}
