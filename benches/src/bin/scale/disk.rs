//! The disk's own rate, what `dd if=FILE of=/dev/null bs=4M iflag=direct`
//! prints: reads that bypass the page cache, one block at a time.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

/// The size of each read, as `dd bs=4M`.
const BLOCK: usize = 4 << 20;

/// Reads the first `len` bytes of the file with `O_DIRECT`, and returns
/// the rate in MB/s.
pub fn direct_read_rate(path: &Path, len: u64) -> io::Result<f64> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    // O_DIRECT wants an aligned buffer: an anonymous mapping is page-aligned.
    let mut buf = memmap2::MmapMut::map_anon(BLOCK)?;
    let start = Instant::now();
    let mut done = 0;
    while done < len {
        match file.read(&mut buf)? {
            0 => break,
            n => done += n as u64,
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64() / 1e6)
}
