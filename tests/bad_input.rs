//! Bad input never hangs, panics or lies: FIFOs where files are expected,
//! extreme stream settings, failed creations and empty files.

use std::io::{ErrorKind, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

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

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn mapping_a_fifo_is_refused_at_once_not_waited_on() {
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
        [open, read_write, create]
    });
    for err in errors {
        assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidInput);
    }
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

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
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
