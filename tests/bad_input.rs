//! Bad input never hangs, panics or lies: FIFOs where files are expected,
//! files opened for the wrong access, extreme stream settings, failed
//! creations and empty files.

mod common;

use std::io::{ErrorKind, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use common::{append, pattern, SmallFileSystem};
use mapview::{Access, MappedFile, StreamOptions, Tail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Runs `f` on its own thread and returns its result; fails the test if it
/// has not returned within 10 s, so that a hang is a failure, not a stuck
/// test run.
fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(Duration::from_secs(10))
        .expect("returned within 10 s")
}

/// Runs the future `f` makes on a runtime of its own, without hanging.
fn async_without_hanging<F: std::future::Future + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> F::Output
where
    F::Output: Send + 'static,
{
    without_hanging(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

fn mkfifo(path: &Path) {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    let ret = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
    assert_eq!(ret, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

#[test]
fn mapping_a_fifo_or_a_directory_is_refused_at_once_not_waited_on() {
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let errors = without_hanging(move || {
        let open = unsafe { MappedFile::open(&fifo) }.map(drop);
        let read_write = unsafe {
            MappedFile::options()
                .access(Access::ReadWrite)
                .capacity(4096)
                .open(&fifo)
        }
        .map(drop);
        let create = unsafe { MappedFile::create(&fifo, 4096) }.map(drop);
        let directory = unsafe { MappedFile::open(fifo.parent().unwrap()) }.map(drop);
        // Already open: the descriptor is refused the same.
        let open_fifo = || {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap()
        };
        let open_directory = std::fs::File::open(fifo.parent().unwrap()).unwrap();
        [
            open,
            read_write,
            create,
            directory,
            unsafe { MappedFile::from_file(open_fifo()) }.map(drop),
            unsafe { MappedFile::options().capacity(4096).open_file(open_fifo()) }.map(drop),
            unsafe { MappedFile::from_file(open_directory) }.map(drop),
        ]
    });
    for (i, err) in errors.into_iter().enumerate() {
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput, "case {i}");
    }
}

#[test]
fn mapping_an_open_file_is_refused_for_an_access_it_was_not_opened_for() {
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, b"original").unwrap();
    let read_only = || std::fs::File::open(&path).unwrap();
    let write_only = || OpenOptions::new().write(true).open(&path).unwrap();
    let appending = || {
        OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap()
    };
    let path_only = || {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&path)
            .unwrap()
    };
    let options = |access| MappedFile::options().access(access);
    let refused = [
        unsafe { options(Access::ReadWrite).open_file(read_only()) }.map(drop),
        unsafe { options(Access::ReadWrite).open_file(write_only()) }.map(drop),
        unsafe { options(Access::ReadWrite).open_file(appending()) }.map(drop),
        unsafe { MappedFile::from_file(write_only()) }.map(drop),
        unsafe { MappedFile::from_file(path_only()) }.map(drop),
        unsafe { options(Access::CopyOnWrite).open_file(write_only()) }.map(drop),
    ];
    for (i, err) in refused.into_iter().enumerate() {
        let err = err.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "case {i}: {err}");
    }

    // What a read-only file allows: reading, and private copies.
    let map = unsafe { MappedFile::from_file(read_only()) }.unwrap();
    assert_eq!(&map.view(..).unwrap()[..], b"original");
    assert_eq!(
        map.view_mut(..).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let private = unsafe { options(Access::CopyOnWrite).open_file(read_only()) }.unwrap();
    private.view_mut(..).unwrap().copy_from_slice(b"modified");
    assert_eq!(std::fs::read(&path).unwrap(), b"original");
    // Nor is a read-only file grown to a larger capacity.
    let longer = unsafe { MappedFile::options().capacity(100).open_file(read_only()) };
    assert_eq!(longer.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
}

#[test]
fn an_open_file_mapped_read_write_is_grown_to_the_capacity_and_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, b"head").unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let map = unsafe {
        MappedFile::options()
            .access(Access::ReadWrite)
            .capacity(8192)
            .open_file(file)
    }
    .unwrap();
    assert_eq!(map.capacity(), 8192);
    let mut tail = map.view_mut(8188..).unwrap();
    tail.copy_from_slice(b"tail");
    tail.flush().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((&bytes[..4], &bytes[8188..]), (&b"head"[..], &b"tail"[..]));
}

#[test]
fn following_a_fifo_is_refused_at_once_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let err =
        async_without_hanging(
            move || async move { Tail::follow(&fifo, SeekFrom::Start(0)).map(drop) },
        );
    assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[test]
fn a_log_replaced_by_a_fifo_is_waited_out_until_a_regular_file_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "first\n");
    async_without_hanging(move || async move {
        let mut lines = Tail::follow(&path, SeekFrom::Start(0)).unwrap().lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "first");
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let waiting = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await;
        assert!(
            waiting.is_err(),
            "no line (and no error) while a FIFO is there"
        );
        std::fs::remove_file(&path).unwrap();
        append(&path, "second\n");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "second");
    });
}

#[test]
fn any_read_ahead_setting_reads_the_whole_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let data = pattern((1 << 20) + 17);
    std::fs::write(&path, &data).unwrap();
    let settings = [
        StreamOptions::new().read_ahead(u64::MAX),
        StreamOptions::new().read_ahead(0),
        StreamOptions::new().max_read_ahead(0),
        StreamOptions::new().read_ahead(0).max_read_ahead(u64::MAX),
    ];
    async_without_hanging(move || async move {
        let map = unsafe { MappedFile::open(&path) }.unwrap();
        for options in settings {
            let mut stream = map.stream_with(.., &options).unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            assert!(back == data, "{options:?}");
            // Near the end, where the cursor plus the window passes 2^64.
            let mut tail = map.stream_with(1 << 20.., &options).unwrap();
            back.clear();
            tail.read_to_end(&mut back).await.unwrap();
            assert!(back == data[1 << 20..], "{options:?}");
        }
    });
}

/// Bytes in use on the file system at `path`.
fn used_bytes(path: &Path) -> u64 {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: all-zero is a valid statvfs.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a valid statvfs to fill.
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
    (stat.f_blocks - stat.f_bfree) * stat.f_frsize
}

#[test]
fn a_create_that_does_not_fit_leaves_the_file_system_as_it_was() {
    let Some(fs) = SmallFileSystem::mount(4 << 20) else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let existing = fs.path().join("existing.bin");
    std::fs::write(&existing, b"keep me").unwrap();
    let used = used_bytes(fs.path());

    let new = fs.path().join("new.bin");
    let err = unsafe { MappedFile::create(&new, 64 << 20) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert!(!new.exists(), "the file this call created is gone");

    let err = unsafe { MappedFile::create(&existing, 64 << 20) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(used_bytes(fs.path()), used, "nothing stays allocated");
}

#[test]
fn an_empty_file_maps_with_capacity_0_and_empty_views() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    let map = unsafe { MappedFile::open(&path) }.unwrap();
    assert_eq!(map.capacity(), 0);
    assert!(map.view(..).unwrap().is_empty());
    assert!(map.view(0..0).unwrap().is_empty());
    for past_the_end in [map.view(0..1).map(drop), map.view(1..).map(drop)] {
        assert_eq!(past_the_end.unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    let writable = unsafe { MappedFile::options().access(Access::ReadWrite).open(&path) }.unwrap();
    let view = writable.view_mut(..).unwrap();
    assert!(view.is_empty());
    view.flush().unwrap();
    view.flush_range(..).unwrap();

    let opened = unsafe { MappedFile::from_file(std::fs::File::open(&path).unwrap()) }.unwrap();
    assert_eq!(opened.capacity(), 0);
    assert!(opened.view(..).unwrap().is_empty());

    let created = unsafe { MappedFile::create(dir.path().join("new.bin"), 0) }.unwrap();
    assert_eq!(created.capacity(), 0);
    assert_eq!(
        std::fs::metadata(dir.path().join("new.bin")).unwrap().len(),
        0
    );
    assert!(MappedFile::anonymous(0)
        .unwrap()
        .view(..)
        .unwrap()
        .is_empty());
}

#[test]
fn an_empty_range_of_a_non_empty_object_is_an_empty_view() {
    let map = MappedFile::anonymous(10_000).unwrap();
    for (start, end) in [(0, 0), (4096, 4096), (5000, 5000), (10_000, 10_000)] {
        let view = map.view(start..end).unwrap();
        assert!(view.is_empty());
        assert_eq!(view.offset(), start);
        assert!(map.view_mut(start..end).unwrap().is_empty());
    }
    assert!(map.view(10_000..).unwrap().is_empty());
}

#[tokio::test]
async fn streams_of_empty_ranges_are_at_their_end_at_once() {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    let empty = unsafe { MappedFile::options().access(Access::ReadWrite).open(&path) }.unwrap();
    let full = MappedFile::anonymous(10_000).unwrap();
    for (map, start, end) in [(&empty, 0, 0), (&full, 5000, 5000), (&full, 10_000, 10_000)] {
        let mut stream = map.stream(start..end).unwrap();
        assert_eq!(stream.len(), 0);
        let mut back = Vec::new();
        assert_eq!(stream.read_to_end(&mut back).await.unwrap(), 0);
        assert_eq!(stream.write(b"x").await.unwrap(), 0);
        stream.flush().await.unwrap();
        let chunks: Vec<bytes::Bytes> = stream.chunks(4096).try_collect().await.unwrap();
        assert!(chunks.is_empty());
    }
}
