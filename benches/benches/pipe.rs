//! `mapview::pipe` against a Unix domain socket, between two processes:
//! throughput of 64 KiB writes, and the round trip of a 64-byte message.
//!
//! `cargo bench -p mapview-benches --bench pipe`. The bench binary starts itself as the other
//! process (the `MAPVIEW_BENCH_CHILD` variable names its role). Each process
//! runs a single-threaded tokio runtime. For p50/p99 of the round trip, run
//! `cargo run --release -p mapview-benches --bin pipeline_bench`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use mapview::pipe;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;

const ROLE: &str = "MAPVIEW_BENCH_CHILD";
const NAME: &str = "MAPVIEW_BENCH_NAME";
const CHUNK: usize = 64 * 1024;
/// Bytes per acknowledged batch in the throughput bench.
const BATCH: usize = 16 << 20;
const MESSAGE: usize = 64;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn addr(name: &str) -> SocketAddr {
    SocketAddr::from_abstract_name(format!("{name}-socket")).expect("abstract name")
}

fn listen(name: &str) -> UnixListener {
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr(name)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    UnixListener::from_std(listener).expect("register")
}

fn connect(name: &str) -> UnixStream {
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr(name)).expect("connect");
    stream.set_nonblocking(true).expect("nonblocking");
    UnixStream::from_std(stream).expect("register")
}

fn spawn(role: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().expect("bench binary"))
        .env(ROLE, role)
        .env(NAME, name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

fn wait_ready(child: &mut Child) {
    use std::io::Read;
    let mut byte = [0u8; 1];
    child
        .stdout
        .as_mut()
        .expect("piped")
        .read_exact(&mut byte)
        .expect("child ready");
}

/// The other process. "sink": reads batches and acknowledges each with one
/// byte. "echo": sends every 64-byte message back.
async fn child(role: &str, name: &str) -> io::Result<()> {
    let ready = || {
        use std::io::Write;
        let mut out = std::io::stdout();
        out.write_all(b"r")?;
        out.flush()
    };
    match role {
        "sink-pipe" | "echo-pipe" => {
            let mut input = pipe::open(&format!("{name}-in"))?;
            let mut output = pipe::create(&format!("{name}-out"), 64 * 1024)?;
            ready()?;
            serve(role == "sink-pipe", &mut input, &mut output).await
        }
        "sink-socket" | "echo-socket" => {
            let (mut input, mut output) = connect(name).into_split();
            serve(role == "sink-socket", &mut input, &mut output).await
        }
        other => Err(io::Error::other(format!("unknown role {other}"))),
    }
}

async fn serve(
    sink: bool,
    input: &mut (impl AsyncRead + Unpin),
    output: &mut (impl AsyncWrite + Unpin),
) -> io::Result<()> {
    let mut buf = vec![0u8; if sink { CHUNK } else { MESSAGE }];
    loop {
        if sink {
            let mut left = BATCH;
            while left > 0 {
                let n = input.read(&mut buf[..CHUNK.min(left)]).await?;
                if n == 0 {
                    return Ok(());
                }
                left -= n;
            }
            output.write_all(&[1]).await?;
        } else {
            match input.read_exact(&mut buf).await {
                Ok(_) => output.write_all(&buf).await?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A connection to a child: where to write, where to read the replies.
struct Peer {
    output: Box<dyn AsyncWrite + Unpin>,
    input: Box<dyn AsyncRead + Unpin>,
    child: Child,
}

impl Peer {
    fn start(rt: &Runtime, transport: &str, role: &str) -> Self {
        let name = format!("mapview-bench-{}-{role}-{transport}", std::process::id());
        let role = format!("{role}-{transport}");
        rt.block_on(async {
            if transport == "pipe" {
                let output = pipe::create(&format!("{name}-in"), 1 << 20).expect("create");
                let mut child = spawn(&role, &name);
                wait_ready(&mut child);
                let input = pipe::open(&format!("{name}-out")).expect("open");
                Peer {
                    output: Box::new(output),
                    input: Box::new(input),
                    child,
                }
            } else {
                let listener = listen(&name);
                let child = spawn(&role, &name);
                let (socket, _) = listener.accept().await.expect("accept");
                let (input, output) = socket.into_split();
                Peer {
                    output: Box::new(output),
                    input: Box::new(input),
                    child,
                }
            }
        })
    }

    fn stop(mut self, rt: &Runtime) {
        rt.block_on(async { self.output.shutdown().await.expect("shutdown") });
        drop(self.output);
        assert!(self.child.wait().expect("wait").success());
    }
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("throughput_64KiB_writes");
    group.throughput(Throughput::Bytes(BATCH as u64));
    group.sample_size(20);
    let chunk = vec![0x5au8; CHUNK];
    for transport in ["pipe", "socket"] {
        let mut peer = Peer::start(&rt, transport, "sink");
        group.bench_function(BenchmarkId::from_parameter(transport), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..BATCH / CHUNK {
                            peer.output.write_all(&chunk).await.expect("write");
                        }
                        peer.input.read_u8().await.expect("ack");
                    }
                    started.elapsed()
                })
            })
        });
        peer.stop(&rt);
    }
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("round_trip_64B");
    group.measurement_time(Duration::from_secs(3));
    for transport in ["pipe", "socket"] {
        let mut peer = Peer::start(&rt, transport, "echo");
        let mut message = [7u8; MESSAGE];
        group.bench_function(BenchmarkId::from_parameter(transport), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        peer.output.write_all(&message).await.expect("write");
                        peer.input.read_exact(&mut message).await.expect("read");
                    }
                    started.elapsed()
                })
            })
        });
        peer.stop(&rt);
    }
    group.finish();
}

criterion_group!(benches, throughput, round_trip);

fn main() {
    if let (Ok(role), Ok(name)) = (std::env::var(ROLE), std::env::var(NAME)) {
        runtime()
            .block_on(child(&role, &name))
            .expect("bench child");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
