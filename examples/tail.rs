//! Prints the lines of a file as they arrive, like `tail -F`: follows the
//! file as it grows, is truncated, or is replaced by a new file.
//!
//! `cargo run --example tail -- PATH [--from-start]`

use std::io::SeekFrom;

use tokio::io::AsyncBufReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: tail PATH [--from-start]");
        std::process::exit(2);
    };
    let start = match args.next().as_deref() {
        Some("--from-start") => SeekFrom::Start(0),
        _ => SeekFrom::End(0),
    };
    let mut lines = mapview::Tail::follow(&path, start)?.lines();
    while let Some(line) = lines.next_line().await? {
        println!("{line}");
    }
    Ok(())
}
