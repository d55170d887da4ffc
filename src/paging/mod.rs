//! The paging engine: the background threads shared by every stream of the
//! process ([`Pager`]) and their scheduling policy (`queue`).
//!
//! ```text
//!   ViewStream / Tail ── JobSlot::start ──> Pager::submit ──> Queue
//!        ▲   (one job per slot at a time)                      │ urgent first,
//!        │                                                     │ then FIFO
//!        └──────── progress, result, wake ─── pager thread <───┘ (bounded)
//! ```

mod pager;
mod queue;

pub use pager::{Pager, PagerBuilder};
