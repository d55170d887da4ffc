//! [`CpuGate`]: how many pager threads may do CPU-bound work at once.
//!
//! Most of a pager thread's time is waiting on the disk, which costs no
//! CPU; that is why the pager runs several threads per core. But some of
//! its work is all CPU: touching every page fresh off the disk, whose first
//! touch costs microseconds per page (on a virtual machine, the hypervisor
//! maps each page on it). When a dozen threads did that at once, an async
//! worker on the same two cores waited tens of milliseconds for a turn: it
//! was preempted mid-poll, or it waited on a lock that a preempted pager
//! thread held (`perf sched` over `scale --quick --size-mib 8192 --streams
//! 1024`). Behind the gate, at most [`CPU_PER_CORE`] threads per core do
//! such work at once, and the others sleep until a permit is free, so the
//! run queues stay short and a worker gets a core soon after it wants one.
//!
//! [`CPU_PER_CORE`]: super::pacing::CPU_PER_CORE

use std::sync::{Condvar, Mutex, MutexGuard};

/// Permits to do CPU-bound work, shared by the pager's threads.
#[derive(Debug)]
pub(crate) struct CpuGate {
    permits: Mutex<Permits>,
    freed: Condvar,
}

/// A permit taken from a [`CpuGate`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: &'a CpuGate,
}

/// The count behind the gate, free of threads so that it can be tested.
#[derive(Debug)]
struct Permits {
    free: usize,
}

impl Permits {
    /// Takes a permit if one is free.
    fn take(&mut self) -> bool {
        let free = self.free > 0;
        self.free -= usize::from(free);
        free
    }

    fn give_back(&mut self) {
        self.free += 1;
    }
}

impl CpuGate {
    /// A gate with `permits` permits (at least one).
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            permits: Mutex::new(Permits {
                free: permits.max(1),
            }),
            freed: Condvar::new(),
        }
    }

    /// Waits for a permit. Blocking: for the pager's threads only.
    pub(crate) fn enter(&self) -> Permit<'_> {
        let mut permits = self.permits();
        while !permits.take() {
            permits = self.freed.wait(permits).unwrap_or_else(|e| e.into_inner());
        }
        Permit { gate: self }
    }

    fn permits(&self) -> MutexGuard<'_, Permits> {
        // The count is consistent between statements: recover it.
        self.permits.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.permits().give_back();
        self.gate.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_taken_up_to_the_count_and_given_back() {
        let mut permits = Permits { free: 2 };
        assert!(permits.take());
        assert!(permits.take());
        assert!(!permits.take());
        permits.give_back();
        assert!(permits.take());
        assert!(!permits.take());
    }

    #[test]
    fn a_gate_has_at_least_one_permit() {
        let gate = CpuGate::new(0);
        let permit = gate.enter();
        assert!(!gate.permits().take());
        drop(permit);
        assert!(gate.permits().take());
    }
}
