//! A short walk through mapview: mapping objects, random-access views,
//! async stream views and following a growing file.
//!
//! Run it with `cargo run --release --example tour`. It makes its own data in
//! a temporary directory and removes it (and its shared memory) at the end.

use std::io;

use futures::TryStreamExt;
use mapview::{Access, MappedFile, Tail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tour.bin");

    // 1. A persisted map: `create` makes the file and grows it to 1 MiB.
    //    SAFETY: no other program touches this new file while we map it.
    let map = unsafe { MappedFile::create(&path, 1 << 20)? };
    println!(
        "created {} ({} bytes, {:?})",
        path.display(),
        map.capacity(),
        map.access()
    );

    // 2. Views start at any offset: page alignment is mapview's job.
    let mut greeting = map.view_mut(1000..1013)?;
    greeting.copy_from_slice(b"hello, mmap!\n");
    greeting.write_value(0, &b'H')?;
    greeting.flush()?; // durable when it returns
    println!(
        "file bytes 1000..1013 on disk: {:?}",
        String::from_utf8_lossy(&std::fs::read(&path)?[1000..1013])
    );

    // 3. Overlapping views are coherent: a write through one shows in the other.
    let wide = map.view(0..4096)?;
    println!(
        "seen through another view: {:?}",
        String::from_utf8_lossy(&wide[1000..1005])
    );

    // 4. Typed values at unaligned offsets.
    let mut header = map.view_mut(3..64)?;
    header.write_value(1, &0xC0FFEE_u32)?;
    println!("typed read back: {:#x}", header.read_value::<u32>(1)?);

    // 5. Copy-on-write: writes stay in this process, the file is untouched.
    let private = unsafe {
        MappedFile::options()
            .access(Access::CopyOnWrite)
            .open(&path)?
    };
    let mut scratch = private.view_mut(1000..1005)?;
    scratch.copy_from_slice(b"JELLO");
    println!(
        "copy-on-write view says {:?}, the file still says {:?}",
        String::from_utf8_lossy(&scratch),
        String::from_utf8_lossy(&std::fs::read(&path)?[1000..1005])
    );

    // 6. Named shared memory: any process of this user opens it by name, and
    //    it is gone when the last handle (in any process) is dropped.
    let name = format!("mapview-tour-{}", std::process::id());
    let shared = unsafe { MappedFile::create_shared(&name, 64 * 1024)? };
    let peer = unsafe { MappedFile::open_shared(&name)? }; // as another process would
    shared.view_mut(..5)?.copy_from_slice(b"ping!");
    println!(
        "peer reads {:?} from {name}",
        String::from_utf8_lossy(&peer.view(..5)?)
    );
    drop((shared, peer));
    let gone = unsafe { MappedFile::open_shared(&name) };
    println!(
        "after the last drop, open_shared says: {}",
        gone.unwrap_err()
    );

    // 7. Anonymous memory: no name, no file, zeroed.
    let scratchpad = MappedFile::anonymous(4096)?;
    println!(
        "anonymous memory starts zeroed: {}",
        scratchpad.view(..)?.iter().all(|&b| b == 0)
    );

    // 8. Bad input is an io::Error, never a panic.
    println!("view past the end: {}", map.view(0..(2 << 20)).unwrap_err());
    let read_only = unsafe { MappedFile::open(&path)? };
    println!(
        "writing a read-only map: {}",
        read_only.view_mut(..).unwrap_err()
    );

    // 9. Stream views: async, sequential. Writes go through pages made
    //    writable ahead of the cursor by a background task, which also
    //    writes dirty ranges back behind it; `flush` returns when durable.
    let stream_path = dir.path().join("stream.bin");
    let big = unsafe { MappedFile::create(&stream_path, 8 << 20)? };
    let mut writer = big.stream(..)?;
    let block = vec![b'm'; 64 << 10];
    while writer.position() < writer.len() {
        writer.write_all(&block).await?;
    }
    writer.flush().await?;
    println!("stream wrote 8 MiB durably: {:?}", writer.stats());

    //    Reading back as zero-copy `Bytes` chunks that point into the mapping
    //    (what a server hands to its socket); a background task makes the
    //    pages ahead resident, so no poll waits on the disk.
    let chunks: Vec<bytes::Bytes> = big.stream(..)?.chunks(1 << 20).try_collect().await?;
    println!(
        "read back {} chunks, {} bytes, all 'm': {}",
        chunks.len(),
        chunks.iter().map(|c| c.len()).sum::<usize>(),
        chunks.iter().all(|c| c.iter().all(|&b| b == b'm'))
    );

    // 10. Tail: follow a log file as it grows, like `tail -F`.
    let log = dir.path().join("app.log");
    std::fs::write(&log, "old line\n")?;
    let mut lines = Tail::follow(&log, io::SeekFrom::End(0))?.lines();
    let appender = tokio::spawn({
        let log = log.clone();
        async move {
            for i in 0..3 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
                std::io::Write::write_all(&mut file, format!("new line {i}\n").as_bytes())?;
            }
            io::Result::Ok(())
        }
    });
    for _ in 0..3 {
        let line = lines.next_line().await?.unwrap_or_default();
        println!("tail saw: {line}");
    }
    appender.await.map_err(io::Error::other)??;
    Ok(())
}
