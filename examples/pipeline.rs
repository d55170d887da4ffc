//! A two-process pipeline through a `mapview::pipe`: this program makes the
//! pipe, starts a copy of itself as the consumer, and sends it a stream of
//! records; the consumer reads them line by line and reports what it got.
//!
//! ```text
//! cargo run --release --example pipeline            # 1,000,000 records
//! cargo run --release --example pipeline -- 5000    # fewer
//! ```
//!
//! The bytes go through a ring in named shared memory: no copy through the
//! kernel, and the consumer sees EOF once the producer shuts its end down.

use std::io;
use std::process::{Command, Stdio};

use mapview::pipe;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufWriter};

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, name] if flag == "--consumer" => consume(name).await,
        [] => produce(1_000_000).await,
        [count] => match count.parse() {
            Ok(count) => produce(count).await,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("usage: pipeline [RECORDS], not {count:?}"),
            )),
        },
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: pipeline [RECORDS]",
        )),
    }
}

/// Makes the pipe, starts the consumer, writes `count` records, shuts down.
async fn produce(count: u64) -> io::Result<()> {
    let name = format!("mapview-pipeline-{}", std::process::id());
    let writer = pipe::create(&name, 1 << 20)?;
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["--consumer", &name])
        .stdin(Stdio::null())
        .spawn()?;

    let mut out = BufWriter::with_capacity(64 << 10, writer);
    for id in 0..count {
        out.write_all(format!("record {id} value {}\n", id * id).as_bytes())
            .await?;
    }
    out.shutdown().await?; // the consumer sees EOF after the last record
    println!("producer: sent {count} records through {name}");

    let status = consumer.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("the consumer failed: {status}")));
    }
    Ok(())
}

/// Reads records until the producer shuts down, checking each one.
async fn consume(name: &str) -> io::Result<()> {
    let mut lines = pipe::open(name)?.lines();
    let mut count = 0u64;
    while let Some(line) = lines.next_line().await? {
        let expected = format!("record {count} value {}", count * count);
        if line != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {count}: got {line:?}"),
            ));
        }
        count += 1;
    }
    println!("consumer: received {count} records, all in order");
    Ok(())
}
