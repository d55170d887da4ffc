//! Streams generated data from a child process through a `mapview::pipe`
//! and, for comparison, through a Unix domain socket; checks a checksum and
//! prints the throughput of both. Then measures the round-trip latency of a
//! 64-byte message both ways, and how fast a reader learns that its writer
//! was killed.
//!
//! ```text
//! cargo run --release -p mapview-benches --bin pipeline_bench            # 4 GiB each way
//! cargo run --release -p mapview-benches --bin pipeline_bench -- 256M    # a smaller transfer
//! cargo run --release -p mapview-benches --bin pipeline_bench -- 256M 100000   # and 100k round trips
//! ```
//!
//! The program starts itself as the child (with `--child ROLE NAME SIZE`).
//! Parent and child each run a single-threaded tokio runtime, so the two
//! transports get the same CPU budget: one core per process.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mapview::pipe;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Size of each write, and of the pipe's ring.
const CHUNK: usize = 64 * 1024;
const RING: usize = 1 << 20;
/// The ping-pong message size.
const MESSAGE: usize = 64;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--child") {
        let [_, role, name, size] = &args[..] else {
            return Err(io::Error::other("usage: --child ROLE NAME SIZE"));
        };
        return runtime.block_on(child(role, name, parse_size(size)?));
    }
    let size = match args.first() {
        Some(size) => parse_size(size)?,
        None => 4 << 30,
    };
    let round_trips = match args.get(1) {
        Some(n) => n.parse().map_err(io::Error::other)?,
        None => 20_000,
    };
    runtime.block_on(parent(size, round_trips))
}

/// `123`, `64K`, `256M`, `4G`.
fn parse_size(text: &str) -> io::Result<u64> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad size {text:?}")))?;
    Ok(n << shift)
}

async fn parent(size: u64, round_trips: usize) -> io::Result<()> {
    let tag = std::process::id();
    println!(
        "streaming {} MiB in {} KiB writes (pipe ring: {} KiB)",
        size >> 20,
        CHUNK >> 10,
        RING >> 10
    );

    let name = format!("mapview-pipeline-{tag}");
    let mut producer = spawn("produce-pipe", &name, size)?;
    wait_for(&mut producer, "ready")?;
    let mut reader = pipe::open(&name)?;
    let pipe_rate = receive(&mut producer, size, |sum| {
        consume_zero_copy(&mut reader, sum)
    })
    .await?;

    let listener = listen(&name)?;
    let mut producer = spawn("produce-socket", &name, size)?;
    let (mut socket, _) = listener.accept().await?;
    let socket_rate = receive(&mut producer, size, |sum| consume_copy(&mut socket, sum)).await?;
    drop(listener);

    println!("pipe:   {pipe_rate:>8.0} MB/s");
    println!("socket: {socket_rate:>8.0} MB/s");
    println!("pipe / socket: {:.2}x", pipe_rate / socket_rate);

    if round_trips > 0 {
        println!("\nping-pong of {MESSAGE}-byte messages, {round_trips} round trips each");
        let pipe_rtt = ping_pong_pipe(&name, round_trips).await?;
        let socket_rtt = ping_pong_socket(&name, round_trips).await?;
        report("pipe", &pipe_rtt);
        report("socket", &socket_rtt);
    }

    println!("\nwriter killed while the reader waits on an empty ring:");
    for _ in 0..5 {
        let latency = death_detection(&name).await?;
        println!("  BrokenPipe {:>8.1} us after SIGKILL", micros(latency));
    }
    Ok(())
}

/// Receives one transfer, checks its checksum against the producer's, and
/// returns the throughput in MB/s.
async fn receive<F, Fut>(producer: &mut Child, size: u64, consume: F) -> io::Result<f64>
where
    F: FnOnce(Checksum) -> Fut,
    Fut: std::future::Future<Output = io::Result<Checksum>>,
{
    let started = Instant::now();
    let sum = consume(Checksum::default()).await?;
    let elapsed = started.elapsed();
    let theirs = read_line(producer)?;
    producer.wait()?;
    let ours = format!("checksum {:016x} bytes {}", sum.finish(), sum.bytes);
    if theirs != ours {
        return Err(io::Error::other(format!(
            "checksum mismatch: producer says {theirs:?}, we got {ours:?}"
        )));
    }
    if sum.bytes != size {
        return Err(io::Error::other("short transfer"));
    }
    Ok(size as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Reads the pipe to EOF through `fill_buf`, hashing the ring's own bytes.
async fn consume_zero_copy(
    reader: &mut pipe::PipeReader,
    mut sum: Checksum,
) -> io::Result<Checksum> {
    loop {
        let bytes = reader.fill_buf().await?;
        if bytes.is_empty() {
            return Ok(sum);
        }
        sum.update(bytes);
        let n = bytes.len();
        reader.consume(n);
    }
}

/// Reads any stream to EOF in `CHUNK` reads, hashing what arrives.
async fn consume_copy(
    stream: &mut (impl AsyncRead + Unpin),
    mut sum: Checksum,
) -> io::Result<Checksum> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(sum);
        }
        sum.update(&buf[..n]);
    }
}

/// The child's side.
async fn child(role: &str, name: &str, size: u64) -> io::Result<()> {
    match role {
        "produce-pipe" => {
            let mut writer = pipe::create(name, RING)?;
            println!("ready");
            produce(&mut writer, size).await
        }
        "produce-socket" => {
            let mut socket = connect(name)?;
            produce(&mut socket, size).await
        }
        "echo-pipe" => {
            let mut ping = pipe::open(&format!("{name}-ping"))?;
            let mut pong = pipe::create(&format!("{name}-pong"), 64 * 1024)?;
            println!("ready");
            echo(&mut ping, &mut pong).await
        }
        "echo-socket" => {
            let socket = connect(name)?;
            let (mut ping, mut pong) = socket.into_split();
            echo(&mut ping, &mut pong).await
        }
        "write-and-hang" => {
            let mut writer = pipe::create(name, RING)?;
            writer.write_all(b"x").await?;
            println!("ready");
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        other => Err(io::Error::other(format!("unknown role {other}"))),
    }
}

/// Writes `size` bytes of a repeating pseudo-random pattern in `CHUNK`
/// writes, shuts down, and prints the checksum of what it wrote.
async fn produce(out: &mut (impl AsyncWrite + Unpin), size: u64) -> io::Result<()> {
    // A pattern whose length is no multiple of the chunk or ring size, so
    // every chunk differs from its neighbours.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let pattern: Vec<u8> = (0..(1 << 20) + 4099)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut sum = Checksum::default();
    let mut offset = 0;
    let mut left = size;
    while left > 0 {
        let len = (CHUNK as u64).min(left) as usize;
        if offset + len > pattern.len() {
            offset = 0;
        }
        let chunk = &pattern[offset..offset + len];
        out.write_all(chunk).await?;
        sum.update(chunk);
        offset += len;
        left -= len as u64;
    }
    out.shutdown().await?;
    println!("checksum {:016x} bytes {}", sum.finish(), sum.bytes);
    Ok(())
}

async fn echo(
    input: &mut (impl AsyncRead + Unpin),
    output: &mut (impl AsyncWrite + Unpin),
) -> io::Result<()> {
    let mut message = [0u8; MESSAGE];
    loop {
        match input.read_exact(&mut message).await {
            Ok(_) => output.write_all(&message).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

async fn ping_pong_pipe(name: &str, round_trips: usize) -> io::Result<Vec<Duration>> {
    let name = format!("{name}-rtt");
    let mut ping = pipe::create(&format!("{name}-ping"), 64 * 1024)?;
    let mut child = spawn("echo-pipe", &name, 0)?;
    wait_for(&mut child, "ready")?;
    let mut pong = pipe::open(&format!("{name}-pong"))?;
    let times = ping_pong(&mut ping, &mut pong, round_trips).await?;
    drop(ping);
    child.wait()?;
    Ok(times)
}

async fn ping_pong_socket(name: &str, round_trips: usize) -> io::Result<Vec<Duration>> {
    let name = format!("{name}-rtt");
    let listener = listen(&name)?;
    let mut child = spawn("echo-socket", &name, 0)?;
    let (socket, _) = listener.accept().await?;
    let (mut pong, mut ping) = socket.into_split();
    let times = ping_pong(&mut ping, &mut pong, round_trips).await?;
    drop(ping);
    child.wait()?;
    Ok(times)
}

async fn ping_pong(
    ping: &mut (impl AsyncWrite + Unpin),
    pong: &mut (impl AsyncRead + Unpin),
    round_trips: usize,
) -> io::Result<Vec<Duration>> {
    let mut message = [7u8; MESSAGE];
    let mut times = Vec::with_capacity(round_trips);
    for i in 0..round_trips + round_trips / 10 {
        let started = Instant::now();
        ping.write_all(&message).await?;
        pong.read_exact(&mut message).await?;
        if i >= round_trips / 10 {
            times.push(started.elapsed()); // the first tenth warms up
        }
    }
    ping.shutdown().await?;
    Ok(times)
}

/// Kills a writer while the reader waits on the empty ring; returns how long
/// the reader took to report it.
async fn death_detection(name: &str) -> io::Result<Duration> {
    let name = format!("{name}-death");
    let mut child = spawn("write-and-hang", &name, 0)?;
    wait_for(&mut child, "ready")?;
    let mut reader = pipe::open(&name)?;
    reader.read_u8().await?;
    let waiting = tokio::spawn(async move {
        let result = reader.read_u8().await;
        (result, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let killed = Instant::now();
    child.kill()?;
    let (result, woke) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .map_err(|_| io::Error::other("the reader hung after its writer was killed"))?
        .map_err(io::Error::other)?;
    child.wait()?;
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(woke - killed),
        other => Err(io::Error::other(format!(
            "expected BrokenPipe, got {other:?}"
        ))),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(label: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| micros(sorted[((sorted.len() - 1) as f64 * q) as usize]);
    println!(
        "{label:<7} round trip p50 {:>6.1} us   p99 {:>6.1} us   max {:>8.1} us",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// The comparison socket: a Unix stream socket in the abstract namespace,
/// like the pipe's wake-up socket.
fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("{name}-socket"))
}

fn listen(name: &str) -> io::Result<UnixListener> {
    let listener = std::os::unix::net::UnixListener::bind_addr(&abstract_addr(name)?)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

fn connect(name: &str) -> io::Result<UnixStream> {
    let stream = std::os::unix::net::UnixStream::connect_addr(&abstract_addr(name)?)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

fn spawn(role: &str, name: &str, size: u64) -> io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--child", role, name, &size.to_string()])
        .stdout(Stdio::piped())
        .spawn()
}

fn read_line(child: &mut Child) -> io::Result<String> {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    // One byte at a time, so that nothing after the line is swallowed.
    let mut reader = std::io::BufReader::with_capacity(1, stdout);
    reader.read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

fn wait_for(child: &mut Child, expected: &str) -> io::Result<()> {
    let line = read_line(child)?;
    if line == expected {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "child said {line:?}, expected {expected:?}"
        )))
    }
}

/// A streaming checksum in the style of Fletcher's, over 64-bit words in
/// four lanes: `sums` adds the words, `weighted` adds the running sums, so
/// that moving a word changes it. Independent of how the stream is cut into
/// pieces, and cheap (adds only, which the compiler vectorises) so that it
/// does not hide the transport's speed.
#[derive(Debug, Default, Clone, Copy)]
struct Checksum {
    sums: [u64; 4],
    weighted: [u64; 4],
    bytes: u64,
    /// Bytes of an unfinished 32-byte block.
    partial: [u8; 32],
}

impl Checksum {
    fn update(&mut self, mut data: &[u8]) {
        let start = (self.bytes % 32) as usize;
        self.bytes += data.len() as u64;
        if start != 0 {
            let take = data.len().min(32 - start);
            self.partial[start..start + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            if start + take < 32 {
                return;
            }
            let block = self.partial;
            self.mix(&block);
        }
        let mut blocks = data.chunks_exact(32);
        for block in &mut blocks {
            self.mix(block);
        }
        let rest = blocks.remainder();
        self.partial[..rest.len()].copy_from_slice(rest);
    }

    fn mix(&mut self, block: &[u8]) {
        for (i, word) in block.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.sums[i] = self.sums[i].wrapping_add(word);
            self.weighted[i] = self.weighted[i].wrapping_add(self.sums[i]);
        }
    }

    fn finish(&self) -> u64 {
        let tail = (self.bytes % 32) as usize;
        let mut last = [0u8; 32];
        last[..tail].copy_from_slice(&self.partial[..tail]);
        let mut copy = *self;
        copy.mix(&last);
        copy.sums
            .iter()
            .chain(&copy.weighted)
            .fold(self.bytes, |h, &lane| {
                (h.rotate_left(29) ^ lane).wrapping_mul(0xff51_afd7_ed55_8ccd)
            })
    }
}
