//! A harness's own data file, and making it cold: its pages dropped from
//! the page cache, so that the next reader waits on the disk.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// The size of each write when making a file: large and sequential, as a
/// copy of a big file is written.
const WRITE: usize = 8 << 20;

/// Writes a file of `len` bytes with large sequential writes, makes them
/// durable, and drops its pages from the page cache.
pub fn make_file(path: &Path, len: u64) -> io::Result<()> {
    // Not zeros, so that no layer below can skip or compress them.
    let block: Vec<u8> = (0..WRITE as u32).map(|i| (i * 131 + 7) as u8).collect();
    let mut file = std::fs::File::create(path)?;
    let mut left = len;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_data()?;
    drop_cached(&file)
}

/// Drops the file's pages from the page cache, and waits until they are
/// gone: pages still mapped (by the last reader's mapping, which is torn
/// down in the background) are not dropped, so it tries again.
pub fn evict(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    file.sync_data()?;
    for _ in 0..500 {
        drop_cached(&file)?;
        if resident_pages(&file)? == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::other("the file's pages stay in the page cache"))
}

/// Asks the kernel to drop the file's clean pages from the page cache.
fn drop_cached(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
    let ret = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// How many of the file's pages are in the page cache (`mincore` tells the
/// truth here: the harness owns the file).
fn resident_pages(file: &std::fs::File) -> io::Result<usize> {
    // SAFETY: the harness is the only user of its own file.
    let map = unsafe { memmap2::Mmap::map(file)? };
    let mut pages = vec![0u8; map.len().div_ceil(4096)];
    // SAFETY: the whole live mapping; `pages` has a byte per page of it.
    let ret = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), pages.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pages.iter().filter(|&&p| p & 1 == 1).count())
}
