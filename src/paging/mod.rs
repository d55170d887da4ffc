//! The paging engine: the background threads shared by every stream of the
//! process ([`Pager`]), their scheduling policy (`queue`), and the budget
//! for the bytes all streams keep resident ahead of their readers
//! (`read_ahead`), and the gate that bounds how many of the threads do
//! CPU-bound work at once (`cpu_gate`); every pacing constant, with its
//! reason, is in `pacing`.
//!
//! ```text
//!   ViewStream / Tail ── JobSlot::start ──> Pager::submit ──> Queue
//!        ▲   (one job per slot at a time)                      │ urgent first,
//!        │                                                     │ then FIFO
//!        └──────── progress, result, wake ─── pager thread <───┘ (bounded)
//!
//!   Release / Region::drop ── Pager::reclaim ──> Queue ──> reclaim thread
//!   (memory given back: never behind the jobs)
//! ```

mod cpu_gate;
pub(crate) mod pacing;
mod pager;
mod queue;
mod read_ahead;

pub use pager::{Pager, PagerBuilder, Paused};
pub(crate) use read_ahead::Claim;
