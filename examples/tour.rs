//! A short walk through mapview's mapping objects and random-access views.
//!
//! Run it with `cargo run --release --example tour`. It makes its own data in
//! a temporary directory and removes it (and its shared memory) at the end.

use std::io;

use mapview::{Access, MappedFile};

fn main() -> io::Result<()> {
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
    Ok(())
}
