//! The Markdown table of a benchmark's runs, and the same figures as CSV
//! rows for `benches/plot.py`.

use crate::figures::Figures;
use crate::run::Reader;

/// One run, with the disk's rate taken before its N.
pub struct Row {
    pub streams: usize,
    pub reader: Reader,
    /// MB/s of direct reads.
    pub disk: f64,
    pub figures: Figures,
}

const HEADER: &str = "\
| streams | reader | MB/s | vs tokio::fs | disk MB/s (direct) | longest poll ms | polls >= 10 ms | of those: slept / preempted / neither | their time on CPU | peak threads | peak RSS MiB | peak page tables MiB | major faults, runtime thread (in polls) |
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// Prints the rows as a Markdown table, with each reader's rate against
/// that of `tokio::fs` for the same N.
pub fn print(rows: &[Row]) {
    println!("{HEADER}");
    for row in rows {
        let figures = &row.figures;
        let rate = figures.megabytes_per_second();
        let versus = rows
            .iter()
            .find(|other| other.streams == row.streams && other.reader == Reader::TokioFs)
            .map_or(String::new(), |tokio_fs| {
                format!("{:.2}x", rate / tokio_fs.figures.megabytes_per_second())
            });
        println!(
            "| {} | {} | {rate:.0} | {versus} | {:.0} | {:.1} | {} | {} / {} / {} | {:.0}% | {} | {:.0} | {:.1} | {} ({}) |",
            row.streams,
            row.reader.name(),
            row.disk,
            figures.longest_poll.as_secs_f64() * 1000.0,
            figures.slow_polls,
            figures.slow_blocked,
            figures.slow_preempted,
            figures.slow_polls - figures.slow_blocked - figures.slow_preempted,
            100.0 * figures.slow_cpu.as_secs_f64() / figures.slow_wall.as_secs_f64().max(1e-9),
            figures.peak_threads,
            figures.peak_rss as f64 / (1 << 20) as f64,
            figures.peak_page_tables as f64 / (1 << 20) as f64,
            figures.major_faults,
            figures.poll_major_faults,
        );
    }
}

/// The CSV header of [`append_csv`].
const CSV_HEADER: &str =
    "streams,reader,mbps,longest_poll_ms,slow_polls,peak_threads,peak_rss_mib,disk_mbps";

/// Appends the rows to the CSV file at `path` (its header first if it is
/// empty), after a `#` line naming the run.
pub fn append_csv(rows: &[Row], path: &std::path::Path, run: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if file.metadata()?.len() == 0 {
        writeln!(file, "{CSV_HEADER}")?;
    }
    writeln!(file, "# {run}")?;
    for row in rows {
        let figures = &row.figures;
        writeln!(
            file,
            "{},{},{:.0},{:.1},{},{},{:.0},{:.0}",
            row.streams,
            row.reader.name(),
            figures.megabytes_per_second(),
            figures.longest_poll.as_secs_f64() * 1000.0,
            figures.slow_polls,
            figures.peak_threads,
            figures.peak_rss as f64 / (1 << 20) as f64,
            row.disk,
        )?;
    }
    Ok(())
}
