//! The table of lent regions: mapped memory the library lends out (as
//! zero-copy `Bytes`, or as the slice of `fill_buf`), which user code reads
//! directly, outside any guarded copy. The `SIGBUS` handler looks a faulting
//! address up here; that lookup runs inside a signal handler, so the table
//! is a fixed array of atomics in static memory: no allocation, no lock.
//!
//! ```text
//!   slot:  seq (even: stable, odd: being written) | start | end | poisoned
//!
//!   claim    (owner):   seq s -> s+1 (CAS, only if end == 0), start, end,
//!                       poisoned = false, seq -> s+2
//!   release  (owner):   seq s -> s+1, start = end = 0, seq -> s+2
//!   find     (handler): seq s (even) ; start, end ; seq still s?
//!                       then addr in start..end is an answer
//! ```
//!
//! Why an answer of `find` is the mapping the faulting thread reads:
//!
//! - The reader of lent memory holds a borrow of it (a `Bytes`, a `fill_buf`
//!   slice), which keeps its owner, and so the owner's slot, alive: while it
//!   faults, that slot is stable and holds the address, so `find` sees it
//!   (the claim happened before the memory was lent, and the borrow reached
//!   the reader after that).
//! - A slot that changes while `find` reads it is being claimed or released:
//!   it belongs to a mapping no one reads yet, or any more. `find` sees `seq`
//!   odd or moved, and skips it, so it never pairs the start of one range
//!   with the end of another.
//! - A released range whose addresses were mapped again later (by anyone)
//!   is no answer either: the owner releases its slot before it unmaps, and
//!   the new mapping exists only after that `munmap`. A thread that faults
//!   in the new mapping got its address through some synchronisation with
//!   that `mmap`, after which it also sees the release.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

/// One entry: the address range of a live mapping, or free (`end == 0`).
#[derive(Debug)]
struct Slot {
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    /// Set by the signal handler when a page of the range was lost.
    poisoned: AtomicBool,
}

impl Slot {
    const fn new() -> Self {
        Self {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Takes the slot for `start..end` if it is free.
    fn claim(&self, start: usize, end: usize) -> bool {
        let seq = self.seq.load(Ordering::Acquire);
        // Free and stable at `seq`: if the CAS below succeeds, no one wrote
        // the slot since, so it is still free and now ours.
        if seq % 2 == 1 || self.end.load(Ordering::Relaxed) != 0 {
            return false;
        }
        if self
            .seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.write(seq + 2, start, end);
        true
    }

    /// Writes the range while `seq` is odd (the caller owns the slot and
    /// made it odd), then publishes it as `done`.
    fn write(&self, done: usize, start: usize, end: usize) {
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.poisoned.store(false, Ordering::Relaxed);
        self.seq.store(done, Ordering::Release);
    }

    /// Frees the slot. Only its owner calls this.
    fn release(&self) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.write(seq + 1, 0, 0);
    }

    /// Whether the slot holds a range with `addr` in it, read consistently.
    /// Async-signal-safe: atomic loads only.
    fn holds(&self, addr: usize) -> bool {
        let seq = self.seq.load(Ordering::Acquire);
        if seq % 2 == 1 {
            return false;
        }
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == seq && start <= addr && addr < end
    }
}

/// A fixed number of slots.
#[derive(Debug)]
pub(super) struct Table<const N: usize> {
    slots: [Slot; N],
    /// Where the next claim starts looking, so that claims do not rescan
    /// the taken slots at the front each time.
    next: AtomicUsize,
}

impl<const N: usize> Table<N> {
    pub(super) const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
            next: AtomicUsize::new(0),
        }
    }

    /// Enters the non-empty range `start..start + len`; `None` when every
    /// slot is taken.
    pub(super) fn claim(&self, start: usize, len: usize) -> Option<usize> {
        debug_assert!(len > 0, "an empty range covers no address");
        let first = self.next.load(Ordering::Relaxed);
        let index = (0..N)
            .map(|i| (first + i) % N)
            .find(|&i| self.slots[i].claim(start, start + len))?;
        self.next.store(index + 1, Ordering::Relaxed);
        Some(index)
    }

    /// Frees the slot `claim` returned.
    pub(super) fn release(&self, index: usize) {
        self.slots[index].release();
    }

    /// Whether a fault was recorded in the range of slot `index`.
    pub(super) fn is_poisoned(&self, index: usize) -> bool {
        self.slots[index].poisoned.load(Ordering::Acquire)
    }

    /// Marks the range holding `addr` as poisoned; `false` if no range holds
    /// it. Async-signal-safe: atomics only, no allocation, no lock.
    pub(super) fn poison_at(&self, addr: usize) -> bool {
        let Some(slot) = self.slots.iter().find(|slot| slot.holds(addr)) else {
            return false;
        };
        slot.poisoned.store(true, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_range_is_found_until_it_is_released() {
        let table = Table::<4>::new();
        let index = table.claim(0x1000, 0x2000).unwrap();
        assert!(!table.poison_at(0xfff));
        assert!(!table.poison_at(0x3000));
        assert!(!table.is_poisoned(index));
        assert!(table.poison_at(0x2fff));
        assert!(table.is_poisoned(index));
        table.release(index);
        assert!(!table.poison_at(0x2fff));
    }

    #[test]
    fn a_full_table_refuses_claims_and_a_released_slot_is_reused_unpoisoned() {
        let table = Table::<2>::new();
        let a = table.claim(0x1000, 0x1000).unwrap();
        let b = table.claim(0x5000, 0x1000).unwrap();
        assert_ne!(a, b);
        assert_eq!(table.claim(0x9000, 0x1000), None);
        assert!(table.poison_at(0x1000));
        table.release(a);
        let c = table.claim(0x9000, 0x1000).unwrap();
        assert_eq!(c, a);
        assert!(!table.is_poisoned(c));
        assert!(table.poison_at(0x9000));
        assert!(!table.is_poisoned(b));
    }

    #[test]
    fn a_lookup_never_pairs_the_start_of_one_range_with_the_end_of_another() {
        static TABLE: Table<1> = Table::new();
        // Between the two ranges: only a torn read (the start of the first,
        // the end of the second) would hold it.
        let between = 0x8000;
        let writer = std::thread::spawn(|| {
            for _ in 0..100_000 {
                for (start, len) in [(0x1000, 0x1000), (0x10000, 0x1000)] {
                    let index = TABLE.claim(start, len).unwrap();
                    TABLE.release(index);
                }
            }
        });
        while !writer.is_finished() {
            assert!(!TABLE.poison_at(between));
        }
        writer.join().unwrap();
    }
}
