//! Helpers shared by the integration tests: unique shared-memory names and
//! child processes that re-run the test binary.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The prefix of every shared-memory name the tests make; `.ci/run` checks
/// that none is left under /dev/shm after the suite.
pub const SHM_PREFIX: &str = "mapview-test-";

/// A shared-memory name no other test (or test run) uses. `.ci/run` sets
/// `MAPVIEW_TEST_RUN` so that it can tell its own leftovers from those of
/// test runs going on beside it.
pub fn shm_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let run = std::env::var("MAPVIEW_TEST_RUN").unwrap_or_default();
    format!("{SHM_PREFIX}{run}{}-{tag}-{n}", std::process::id())
}

/// Whether a shared-memory object of this name exists (Linux: /dev/shm).
pub fn shm_exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// The environment variable that tells a re-run test binary which child role
/// to play.
const ROLE: &str = "MAPVIEW_TEST_CHILD";

/// The role this process plays if it was started by [`spawn_child`], with
/// its argument.
pub fn child_role() -> Option<(String, String)> {
    let role = std::env::var(ROLE).ok()?;
    let arg = std::env::var("MAPVIEW_TEST_ARG").unwrap_or_default();
    Some((role, arg))
}

/// Re-runs this test binary, running only the test `entry`, as a child that
/// plays `role` with `arg`. Its stdout is piped so the parent can wait for
/// lines from it.
pub fn spawn_child(entry: &str, role: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("MAPVIEW_TEST_ARG", arg)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child test process")
}

/// Runs a child to completion and asserts that it succeeded.
pub fn run_child(entry: &str, role: &str, arg: &str) {
    let output = spawn_child(entry, role, arg)
        .wait_with_output()
        .expect("wait for child");
    assert!(
        output.status.success(),
        "child {role} failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Reads the child's stdout until a line ending in `line` appears (the test
/// harness may print its own text in front of it).
pub fn wait_for_line(child: &mut Child, line: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut got = String::new();
    loop {
        got.clear();
        let n = reader.read_line(&mut got).expect("read child stdout");
        assert!(n > 0, "child exited before printing {line:?}");
        if got.trim_end().ends_with(line) {
            return;
        }
    }
}

/// Writes `len` bytes of a position-dependent pattern to a new file in `dir`.
pub fn pattern_file(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data = pattern(len);
    let path = dir.join(format!("pattern-{len}.bin"));
    std::fs::write(&path, &data).expect("write pattern file");
    (path, data)
}

/// [`pattern_file`] whose pages were evicted from the page cache.
pub fn cold_pattern_file(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let (path, data) = pattern_file(dir, len);
    evict(&path);
    assert!(
        resident_pages(&path, 0..len) < len / 4096 / 2,
        "eviction failed"
    );
    (path, data)
}

/// A byte pattern that differs between pages and within them.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect()
}

/// Drops the file's pages from the page cache (they must be clean and
/// unmapped): the next access must go to the disk.
pub fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open for evict");
    file.sync_all().expect("sync before evict");
    // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
    let ret = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(ret, 0, "posix_fadvise");
}

/// How many pages of `range` of the file are in the page cache (mincore
/// tells the truth here: the tests own their files).
pub fn resident_pages(path: &Path, range: std::ops::Range<usize>) -> usize {
    let file = std::fs::File::open(path).expect("open for mincore");
    // SAFETY: the test owns the file and does not change it meanwhile.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map for mincore");
    let page = 4096;
    let start = range.start / page * page;
    let len = range.end - start;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: the range lies inside the mapping; vec has a byte per page.
    let ret = unsafe {
        libc::mincore(
            map.as_ptr().add(start) as *mut _,
            len,
            vec.as_mut_ptr().cast(),
        )
    };
    assert_eq!(ret, 0, "mincore");
    vec.iter().filter(|&&p| p & 1 == 1).count()
}

/// How many pages of `range` (byte offsets into this process's only
/// mapping of the file at `path`) are mapped: present in the page tables,
/// per `/proc/self/pagemap`. Unlike `mincore`, this tells a page that is
/// only in the page cache from one this mapping can touch without a fault.
pub fn mapped_pages(path: &Path, range: std::ops::Range<usize>) -> usize {
    use std::os::unix::fs::FileExt;
    let (base, end) = only_mapping_of(path);
    assert!(base + range.end <= end);
    let pagemap = std::fs::File::open("/proc/self/pagemap").expect("open pagemap");
    let page = 4096;
    let first = (base + range.start) / page;
    let mut entries = vec![0u8; (range.end - range.start).div_ceil(page) * 8];
    pagemap
        .read_exact_at(&mut entries, first as u64 * 8)
        .expect("read pagemap");
    entries
        .chunks(8)
        .filter(|e| u64::from_ne_bytes((*e).try_into().unwrap()) >> 63 == 1)
        .count()
}

/// Waits until `condition` holds, checking every millisecond; panics with
/// `what` after a generous 20 s (a loaded machine is slow, a hang is not).
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Appends `text` to the file at `path` (creating it), as a logging program
/// would.
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Cuts the file at `path` to `len` bytes, as another program would.
pub fn truncate(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path);
    file.and_then(|f| f.set_len(len)).expect("truncate");
}

/// A small tmpfs mounted on a temporary directory while it lives.
pub struct SmallFileSystem(tempfile::TempDir);

impl SmallFileSystem {
    /// `None` unless this process may mount (root, with the capability:
    /// a container may withhold it).
    pub fn mount(bytes: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let target = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let options = std::ffi::CString::new(format!("size={bytes}")).unwrap();
        // SAFETY: valid C strings; mounting changes nothing of this process.
        let ret = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if ret != 0 {
            eprintln!("mount tmpfs: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(Self(dir))
    }
}

impl SmallFileSystem {
    /// The directory the file system is mounted on.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.path().to_str().unwrap()).unwrap();
        // SAFETY: a valid C string naming the mount made in `mount`.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Makes a shared-memory object by hand, as another program would, with
/// `mode`, `len` bytes and owner `uid` (`None`: this process's user).
pub fn foreign_object(name: &str, mode: u32, len: u64, uid: Option<u32>) -> std::fs::File {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new("/dev/shm").join(name);
    let file = std::fs::File::create_new(&path).unwrap();
    file.set_len(len).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .unwrap();
    if let Some(uid) = uid {
        std::os::unix::fs::fchown(&file, Some(uid), None).expect("fchown (tests run as root)");
    }
    file
}

/// Holds a shared `flock` on `file`, as a live holder of a named map does.
pub fn hold(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, borrowed for the call.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) }, 0);
}

/// The start of every name [`shm_name`] makes in this process.
pub fn shm_prefix() -> String {
    let run = std::env::var("MAPVIEW_TEST_RUN").unwrap_or_default();
    format!("{SHM_PREFIX}{run}{}-", std::process::id())
}

/// Evicts the pages of the file at `path` that this process's only mapping
/// of it holds, as memory pressure would: drops the mapping's page-table
/// entries (`MADV_DONTNEED`: the file is mapped shared, so its contents
/// stay in the file), then the pages from the page cache.
pub fn evict_mapped(path: &Path) {
    let (start, end) = only_mapping_of(path);
    // SAFETY: `start..end` is a live shared mapping of a file (per
    // /proc/self/maps); DONTNEED on it changes no contents, and the next
    // touch of a page faults it in again.
    let ret = unsafe { libc::madvise(start as *mut _, end - start, libc::MADV_DONTNEED) };
    assert_eq!(ret, 0, "madvise");
    evict(path);
}

/// The address ranges of this process's mappings of the file at `path`,
/// per `/proc/self/maps`.
pub fn mappings_of(path: &Path) -> Vec<std::ops::Range<usize>> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read maps");
    let name = path.to_str().expect("utf-8 path");
    maps.lines()
        .filter(|line| line.ends_with(name))
        .map(|line| {
            let (start, end) = line.split(' ').next().unwrap().split_once('-').unwrap();
            let address = |hex| usize::from_str_radix(hex, 16).unwrap();
            address(start)..address(end)
        })
        .collect()
}

/// How many bytes of address space this process's mappings of the file at
/// `path` take.
pub fn mapped_bytes(path: &Path) -> usize {
    mappings_of(path).iter().map(|range| range.len()).sum()
}

/// The address range of this process's only mapping of the file at `path`.
fn only_mapping_of(path: &Path) -> (usize, usize) {
    let mappings = mappings_of(path);
    let [only] = mappings.as_slice() else {
        panic!("the file is mapped {} times, not once", mappings.len());
    };
    (only.start, only.end)
}

/// Major faults of the calling thread so far.
pub fn major_faults_of_this_thread() -> i64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes; RUSAGE_THREAD is this thread.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    usage.ru_majflt
}
