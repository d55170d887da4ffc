//! The process-wide read-ahead budget: bytes made resident ahead of every
//! cursor and not yet consumed stay under one bound, so that many streams
//! over data larger than memory do not prefetch pages that are evicted
//! again before their readers come (and then fault on the async worker).
//!
//! ```text
//!   limit ├───────────────────────────────────────────────────────────┤
//!   held  ├─ stream A ─┤├─ stream B ─┤├ C ┤             (free)
//!         each stream's claim: from its cursor to the end of what it asked
//!         for; at most an equal share of the limit, shrinking as streams
//!         join and growing back as they leave
//! ```
//!
//! A stream whose reader waits always gets a little, budget or not: its
//! share, but at least [`MIN_FLOOR`] and at most [`FLOOR`] (or what it asked
//! for, if less). Otherwise streams that hold the budget without reading
//! could starve one that reads. So the bound can be passed by at most that
//! much per waiting stream, which is about the budget again when every
//! stream waits at once.

use std::sync::atomic::{AtomicU64, Ordering};

use super::pacing::{FLOOR, MIN_FLOOR};

/// The budget shared by the streams of a process.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    limit: u64,
    /// Bytes granted and not yet given back.
    held: AtomicU64,
    /// Streams holding a [`Claim`].
    streams: AtomicU64,
}

/// One stream's part of the budget; gives it all back when dropped.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    budget: &'a ReadAhead,
    held: u64,
}

impl ReadAhead {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            held: AtomicU64::new(0),
            streams: AtomicU64::new(0),
        }
    }

    /// The bound on bytes resident ahead of all cursors.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes granted and not yet given back, across all streams.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// A claim for a new stream, holding nothing yet.
    pub(crate) fn join(&self) -> Claim<'_> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        Claim {
            budget: self,
            held: 0,
        }
    }

    /// An equal share of the limit for each stream now holding a claim.
    pub(crate) fn share(&self) -> u64 {
        self.limit / self.streams.load(Ordering::Relaxed).max(1)
    }

    /// What a waiting reader gets beyond a spent budget.
    fn floor(&self) -> u64 {
        self.share().clamp(MIN_FLOOR, FLOOR)
    }

    /// Takes up to `want` bytes of what is free. Returns what it took.
    fn take(&self, want: u64) -> u64 {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let grant = want.min(self.limit.saturating_sub(held));
            if grant == 0 {
                return 0;
            }
            match self.held.compare_exchange_weak(
                held,
                held + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(now) => held = now,
            }
        }
    }

    /// Takes `bytes` whether or not they are free (a waiting reader's floor).
    fn force(&self, bytes: u64) {
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    fn give_back(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Claim<'_> {
    /// Bytes this stream holds.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// Asks for `more` bytes on top of what the stream holds. Returns how
    /// many it may prefetch: within its share and what is free, and at
    /// least a floor (its share, within `MIN_FLOOR..=FLOOR`; `more` if less)
    /// if its reader is `waiting`.
    pub(crate) fn grow(&mut self, more: u64, waiting: bool) -> u64 {
        let room = self.budget.share().saturating_sub(self.held);
        let mut granted = self.budget.take(more.min(room));
        let floor = if waiting {
            more.min(self.budget.floor())
        } else {
            0
        };
        if granted < floor {
            self.budget.force(floor - granted);
            granted = floor;
        }
        self.held += granted;
        granted
    }

    /// Holds `bytes` from now on, giving back the rest if that is less (the
    /// reader consumed some, or the stream started over after a seek).
    pub(crate) fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.held {
            self.budget.give_back(self.held - bytes);
            self.held = bytes;
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.shrink_to(0);
        self.budget.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn one_stream_gets_what_it_asks_for_within_the_limit() {
        let budget = ReadAhead::new(64 * MIB);
        let mut claim = budget.join();
        assert_eq!(claim.grow(32 * MIB, false), 32 * MIB);
        assert_eq!(claim.grow(64 * MIB, false), 32 * MIB);
        assert_eq!(claim.grow(MIB, false), 0);
        assert_eq!(budget.held(), 64 * MIB);
    }

    #[test]
    fn shares_shrink_as_streams_join_and_grow_back_as_they_leave() {
        let budget = ReadAhead::new(64 * MIB);
        let mut claims: Vec<Claim<'_>> = (0..4).map(|_| budget.join()).collect();
        for claim in &mut claims {
            assert_eq!(claim.grow(32 * MIB, false), 16 * MIB);
        }
        assert_eq!(budget.held(), 64 * MIB);
        // Three leave: the last one's share is the whole limit again.
        let mut last = claims.pop().unwrap();
        drop(claims);
        assert_eq!(budget.held(), 16 * MIB);
        assert_eq!(last.grow(64 * MIB, false), 48 * MIB);
    }

    #[test]
    fn a_waiting_reader_gets_its_floor_when_the_budget_is_spent() {
        let budget = ReadAhead::new(8 * MIB);
        let mut greedy = budget.join();
        let mut waiting = budget.join();
        assert_eq!(greedy.grow(4 * MIB, false), 4 * MIB);
        assert_eq!(waiting.grow(4 * MIB, false), 4 * MIB);
        // Spent, and both at their share: reading ahead gets nothing, a
        // waiting reader gets a floor beyond the limit.
        assert_eq!(greedy.grow(MIB, false), 0);
        assert_eq!(waiting.grow(4 * MIB, true), FLOOR);
        assert_eq!(budget.held(), 8 * MIB + FLOOR);
        // A small request is granted whole, not rounded up to the floor.
        assert_eq!(greedy.grow(4096, true), 4096);
    }

    #[test]
    fn the_floor_shrinks_with_the_share_down_to_a_few_pages() {
        let budget = ReadAhead::new(8 * MIB);
        let mut claims: Vec<Claim<'_>> = (0..64).map(|_| budget.join()).collect();
        for claim in &mut claims {
            claim.grow(8 * MIB, false);
        }
        assert_eq!(budget.held(), 8 * MIB);
        // A share of 128 KiB each: a waiting reader's floor is that much.
        assert_eq!(claims[0].grow(MIB, true), 128 << 10);
        let mut many: Vec<Claim<'_>> = (0..1000).map(|_| budget.join()).collect();
        assert_eq!(many[0].grow(MIB, true), MIN_FLOOR);
    }

    #[test]
    fn consumed_bytes_go_back_to_the_budget() {
        let budget = ReadAhead::new(8 * MIB);
        let mut claim = budget.join();
        claim.grow(8 * MIB, false);
        claim.shrink_to(3 * MIB);
        assert_eq!((claim.held(), budget.held()), (3 * MIB, 3 * MIB));
        // Shrinking to more than it holds changes nothing.
        claim.shrink_to(5 * MIB);
        assert_eq!(budget.held(), 3 * MIB);
        drop(claim);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_thousand_streams_stay_within_the_limit_plus_their_floors() {
        let budget = ReadAhead::new(64 * MIB);
        let mut claims: Vec<Claim<'_>> = (0..1024).map(|_| budget.join()).collect();
        for claim in &mut claims {
            claim.grow(32 * MIB, false);
        }
        assert!(budget.held() <= 64 * MIB);
        let waiting = claims
            .iter_mut()
            .take(10)
            .map(|c| c.grow(MIB, true))
            .sum::<u64>();
        assert!(budget.held() <= 64 * MIB + waiting);
    }
}
