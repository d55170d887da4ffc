//! What the benches share: the workload size and criterion settings.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Throughput};

/// Every reader and writer moves data in buffers of this size.
pub const BUF: usize = 64 << 10;

/// The bytes each iteration moves: `MAPVIEW_BENCH_BYTES`, default 1 GiB.
pub fn bench_bytes() -> usize {
    std::env::var("MAPVIEW_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

/// Few, long samples (each moves `len` bytes); throughput in bytes/s.
pub fn configure(group: &mut BenchmarkGroup<'_, WallTime>, len: usize, seconds: u64) {
    group
        .throughput(Throughput::Bytes(len as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(seconds));
}
