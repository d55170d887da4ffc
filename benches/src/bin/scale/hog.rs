//! A CPU hog: two processes that busy-loop, beside the runs.

use std::io;
use std::process::{Child, Command};

/// How many busy-looping processes the hog runs: one per core of the
/// machine the issue measured on.
const PROCESSES: usize = 2;

/// The hog's processes, ended when it drops.
pub struct Hog {
    processes: Vec<Child>,
}

impl Hog {
    pub fn start() -> io::Result<Hog> {
        let mut hog = Hog {
            processes: Vec::new(),
        };
        for _ in 0..PROCESSES {
            let process = Command::new(std::env::current_exe()?)
                .arg(crate::HOG)
                .spawn()?;
            hog.processes.push(process);
        }
        Ok(hog)
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for process in &mut self.processes {
            // It may have died already; then there is nothing to end.
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// Busy-loops until killed: the body of a hog process.
pub fn burn() -> ! {
    let mut spins = 0u64;
    loop {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}
