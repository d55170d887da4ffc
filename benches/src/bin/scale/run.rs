//! One measured run, in a child process: N tasks on a `current_thread`
//! runtime, each reading its own range of the file through one reader.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use crate::figures::Figures;
use crate::polls::{timed, PollTimes};
use crate::proc_status::Sampler;

/// The size of each read.
const READ: usize = 64 << 10;

/// The readers compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Mapview,
    TokioFs,
}

impl Reader {
    /// Every reader, in the order each N runs them.
    pub const ALL: [Reader; 2] = [Reader::Mapview, Reader::TokioFs];

    pub fn name(self) -> &'static str {
        match self {
            Reader::Mapview => "mapview",
            Reader::TokioFs => "tokio::fs",
        }
    }
}

impl std::str::FromStr for Reader {
    type Err = io::Error;

    fn from_str(name: &str) -> io::Result<Reader> {
        Reader::ALL
            .into_iter()
            .find(|reader| reader.name() == name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no reader {name}")))
    }
}

/// What the tasks of a run open their ranges from.
enum Source {
    /// One mapping of the file, which every stream reads a range of.
    Mapview(mapview::MappedFile),
    /// The file, which every task opens for itself.
    TokioFs(PathBuf),
}

impl Source {
    fn open(reader: Reader, path: &Path) -> io::Result<Source> {
        Ok(match reader {
            // SAFETY: the harness is the only user of its own file.
            Reader::Mapview => Source::Mapview(unsafe { mapview::MappedFile::open(path)? }),
            Reader::TokioFs => Source::TokioFs(path.to_owned()),
        })
    }

    /// A reader of `range` of the file.
    async fn reader(&self, range: Range<u64>) -> io::Result<Box<dyn AsyncRead + Send + Unpin>> {
        Ok(match self {
            Source::Mapview(map) => Box::new(map.stream(range)?),
            Source::TokioFs(path) => {
                let mut file = tokio::fs::File::open(path).await?;
                file.seek(SeekFrom::Start(range.start)).await?;
                Box::new(file.take(range.end - range.start))
            }
        })
    }
}

/// Runs `streams` tasks over the file with `reader`, on a `current_thread`
/// runtime on this thread, and measures them. The pager of this process
/// gets a read-ahead budget of `budget` bytes.
pub fn run(reader: Reader, streams: usize, path: &Path, budget: u64) -> io::Result<Figures> {
    if reader == Reader::Mapview {
        mapview::Pager::builder()
            .read_ahead_budget(budget)
            .install()?;
    }
    let len = std::fs::metadata(path)?.len();
    let source = Arc::new(Source::open(reader, path)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sampler = Sampler::start();
    let faults_before = major_faults_of_this_thread();
    let start = Instant::now();
    let (bytes, polls) = runtime.block_on(read_all(source, len, streams))?;
    let seconds = start.elapsed().as_secs_f64();
    let major_faults = major_faults_of_this_thread() - faults_before;
    let peaks = sampler.stop()?;
    if bytes != len {
        return Err(io::Error::other(format!("read {bytes} bytes of {len}")));
    }
    Ok(Figures {
        bytes,
        seconds,
        longest_poll: polls.longest,
        slow_polls: polls.slow,
        slow_blocked: polls.slow_blocked,
        slow_preempted: polls.slow_preempted,
        slow_wall: polls.slow_wall,
        slow_cpu: polls.slow_cpu,
        peak_threads: peaks.threads,
        peak_rss: peaks.rss,
        peak_page_tables: peaks.page_tables,
        major_faults,
        poll_major_faults: polls.major_faults,
    })
}

/// Reads the whole file as `streams` tasks over disjoint ranges, and
/// returns the bytes read and the times of the tasks' polls.
async fn read_all(source: Arc<Source>, len: u64, streams: usize) -> io::Result<(u64, PollTimes)> {
    let tasks: Vec<_> = ranges(len, streams)
        .map(|range| tokio::spawn(timed(read_range(Arc::clone(&source), range))))
        .collect();
    let mut bytes = 0;
    let mut polls = PollTimes::default();
    for task in tasks {
        let (read, times) = task.await?;
        bytes += read?;
        polls = polls.add(times);
    }
    Ok((bytes, polls))
}

/// `len` bytes cut into `count` disjoint ranges, the last one taking the
/// remainder.
fn ranges(len: u64, count: usize) -> impl Iterator<Item = Range<u64>> {
    let each = len / count as u64;
    (0..count as u64).map(move |i| {
        let end = if i + 1 == count as u64 {
            len
        } else {
            (i + 1) * each
        };
        i * each..end
    })
}

/// Reads `range` of the source to its end, [`READ`] bytes at a time.
async fn read_range(source: Arc<Source>, range: Range<u64>) -> io::Result<u64> {
    let mut reader = source.reader(range).await?;
    let mut buf = vec![0u8; READ];
    let mut total = 0;
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Major page faults (waits on the disk) taken by the calling thread so far.
fn major_faults_of_this_thread() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given; RUSAGE_THREAD
    // cannot fail for the calling thread.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    usage.ru_majflt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_file_without_overlap() {
        let ranges: Vec<_> = ranges(1000, 3).collect();
        assert_eq!(ranges, [0..333, 333..666, 666..1000]);
    }

    #[test]
    fn readers_are_found_by_name() {
        for reader in Reader::ALL {
            assert_eq!(reader.name().parse::<Reader>().unwrap(), reader);
        }
        assert!("std::fs".parse::<Reader>().is_err());
    }
}
