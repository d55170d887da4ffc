//! Which addresses hold which file's bytes: the mappings of files in an
//! open-file cache, registered while the cache holds them, so that a
//! [`SendfileStream`](super::SendfileStream) can hand a slice of one to the
//! socket with `sendfile` instead of copying it.
//!
//! ```text
//!   Opened::map (shared) ─> Registered::new(region) ─> REGISTRY: start ─> (end, file, offset)
//!   SendfileStream::poll_write_vectored(IoSlice) ─> part_of(slice) ─> sendfile(socket, file, offset)
//!   drop(Registered) ─> entry removed, then the region (maybe unmapped)
//! ```
//!
//! Only read-only shared mappings of files are registered: their memory is
//! the file's page cache, so `sendfile` sends exactly the bytes a copy from
//! the mapping would (even while the file changes). An entry is removed
//! before its mapping can be unmapped, so an address found in the registry
//! is the mapping's, not a later one's at the same address.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::object::{Access, Object};
use crate::region::Region;

/// Registered mappings by start address.
static REGISTRY: RwLock<BTreeMap<usize, Entry>> = RwLock::new(BTreeMap::new());

#[derive(Debug)]
struct Entry {
    end: usize,
    object: Arc<Object>,
    /// Where the mapping's first byte lies in the file.
    offset: u64,
}

/// A region whose addresses are registered as its file's bytes for as long
/// as this lives.
#[derive(Debug)]
pub(crate) struct Registered {
    region: Arc<Region>,
}

impl Registered {
    /// Registers `region`, a read-only shared mapping of a file.
    pub(crate) fn new(region: Arc<Region>) -> Self {
        debug_assert_eq!(region.object().access, Access::Read);
        let addresses = region.addresses();
        let entry = Entry {
            end: addresses.end,
            object: Arc::clone(region.object_arc()),
            offset: region.object_offset(0),
        };
        write().insert(addresses.start, entry);
        Self { region }
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Before `self.region` drops (fields drop after this), which may
        // unmap it.
        write().remove(&self.region.addresses().start);
    }
}

/// Bytes of a registered mapping: which file, and where in it.
#[derive(Debug)]
pub(crate) struct Part {
    /// Holds the file open while it is sent, even if the cache lets the
    /// mapping go meanwhile.
    pub(crate) object: Arc<Object>,
    pub(crate) offset: u64,
}

/// The file bytes `bytes` are, if they lie inside a registered mapping.
/// The caller must hold what keeps `bytes` alive (a slice borrowed from
/// them does): then the mapping that holds them cannot have been unmapped
/// and its addresses taken by another.
pub(crate) fn part_of(bytes: &[u8]) -> Option<Part> {
    let start = bytes.as_ptr() as usize;
    part_at(start..start + bytes.len())
}

/// The file bytes at the addresses `span` are, if they lie inside a
/// registered mapping.
fn part_at(span: Range<usize>) -> Option<Part> {
    if span.is_empty() {
        return None;
    }
    let registry = read();
    let (&start, entry) = registry.range(..=span.start).next_back()?;
    (span.end <= entry.end).then(|| Part {
        object: Arc::clone(&entry.object),
        offset: entry.offset + (span.start - start) as u64,
    })
}

// The map is consistent between statements: a panic elsewhere while it was
// held leaves nothing half done.
fn read() -> RwLockReadGuard<'static, BTreeMap<usize, Entry>> {
    REGISTRY
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write() -> RwLockWriteGuard<'static, BTreeMap<usize, Entry>> {
    REGISTRY
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MappedFile;

    fn region(len: usize) -> (tempfile::NamedTempFile, Arc<Region>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![5u8; len]).unwrap();
        let opened = std::fs::File::open(file.path()).unwrap();
        // SAFETY: the test is the only user of its temp file.
        let map = unsafe { MappedFile::from_file(opened) }.unwrap();
        (file, Arc::new(map.shared_region().unwrap()))
    }

    /// The bytes `range` of `region`'s memory, as a slice.
    fn slice(region: &Region, range: Range<usize>) -> &[u8] {
        let start = region.addresses().start;
        // SAFETY: the range lies inside the live, readable mapping, which
        // `region` keeps alive for the slice's lifetime; nothing writes it.
        unsafe { std::slice::from_raw_parts((start + range.start) as *const u8, range.len()) }
    }

    #[test]
    fn slices_inside_a_registered_mapping_are_parts_of_its_file_until_it_drops() {
        let (_file, region) = region(3 * 4096 + 10);
        let registered = Registered::new(Arc::clone(&region));
        let part = part_of(slice(&region, 100..4200)).unwrap();
        assert_eq!(part.offset, 100);
        assert!(Arc::ptr_eq(&part.object, region.object_arc()));
        let last = part_of(slice(&region, 0..3 * 4096 + 10)).unwrap();
        assert_eq!(last.offset, 0);
        // Empty slices are nobody's.
        assert!(part_of(slice(&region, 5..5)).is_none());
        drop(registered);
        assert!(part_of(slice(&region, 100..4200)).is_none());
    }

    #[test]
    fn memory_outside_every_registered_mapping_is_no_part() {
        let (_file, region) = region(8192);
        let _registered = Registered::new(Arc::clone(&region));
        let heap = vec![5u8; 8192];
        assert!(part_of(&heap).is_none());
        // Addresses that run past the mapping's end are not all the file's
        // (by address: the bytes past the end are not memory to read).
        let addresses = region.addresses();
        assert!(part_at(addresses.start + 4096..addresses.end).is_some());
        assert!(part_at(addresses.start + 4096..addresses.end + 1).is_none());
        assert!(part_at(addresses.start - 1..addresses.start + 1).is_none());
    }
}
