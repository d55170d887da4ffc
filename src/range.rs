//! Resolving `RangeBounds<u64>` against the bounds of an object or a view.

use std::io;
use std::ops::{Bound, Range, RangeBounds};

/// A byte range `start..start + len`, already checked against the bounds it
/// was resolved in. It may be empty: a view or stream of it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Span {
    /// The length as a `usize`, for a mapping or a slice.
    pub(crate) fn len_usize(self) -> io::Result<usize> {
        usize::try_from(self.len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "range is larger than the address space",
            )
        })
    }
}

/// `range` cut into consecutive pieces of at most `step` (non-zero) bytes.
pub(crate) fn steps(range: Range<u64>, step: u64) -> impl Iterator<Item = Range<u64>> {
    (range.start..range.end)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .map(move |start| start..start.saturating_add(step).min(range.end))
}

/// Resolves `range` inside `lo..hi`: an unbounded start is `lo`, an unbounded
/// end is `hi`. An empty range anywhere inside (`hi..hi` included) is fine,
/// as an empty slice of a slice is. `InvalidInput` if the range is reversed
/// or reaches outside `lo..hi`.
pub(crate) fn resolve(range: impl RangeBounds<u64>, lo: u64, hi: u64) -> io::Result<Span> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(lo),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(hi),
    };
    match (start, end) {
        (Some(start), Some(end)) if lo <= start && start <= end && end <= hi => Ok(Span {
            start,
            len: end - start,
        }),
        (Some(start), Some(end)) if start > end => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("reversed range {start}..{end}"),
        )),
        _ => {
            let show = |bound: Option<u64>| bound.map_or("2^64".to_owned(), |b| b.to_string());
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {}..{} reaches outside {lo}..{hi}",
                    show(start),
                    show(end)
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_ends_take_the_bounds() {
        assert_eq!(resolve(.., 5, 9).unwrap(), Span { start: 5, len: 4 });
        assert_eq!(resolve(6.., 5, 9).unwrap(), Span { start: 6, len: 3 });
        assert_eq!(resolve(..=6, 5, 9).unwrap(), Span { start: 5, len: 2 });
    }

    #[test]
    fn empty_ranges_inside_the_bounds_are_empty_spans() {
        assert_eq!(resolve(4..4, 0, 9).unwrap(), Span { start: 4, len: 0 });
        assert_eq!(resolve(9.., 0, 9).unwrap(), Span { start: 9, len: 0 });
        assert_eq!(resolve(.., 0, 0).unwrap(), Span { start: 0, len: 0 });
    }

    #[test]
    fn outside_reversed_and_overflowing_ranges_are_invalid_input() {
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = resolve(5..4, 0, 9);
        for span in [
            reversed,
            resolve(0..10, 0, 9),
            resolve(10..10, 0, 9),
            resolve(10.., 0, 9),
            resolve(4.., 5, 9),
            resolve(..=u64::MAX, 0, 9),
            resolve((Bound::Excluded(u64::MAX), Bound::Unbounded), 0, 9),
        ] {
            assert_eq!(span.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn steps_cover_the_range_in_order_without_gaps() {
        let cut = |range, step| steps(range, step).collect::<Vec<_>>();
        assert_eq!(cut(0..10, 4), [0..4, 4..8, 8..10]);
        assert_eq!(cut(3..11, 4), [3..7, 7..11]);
        assert_eq!(cut(5..5, 4), []);
        assert_eq!(
            cut(u64::MAX - 3..u64::MAX, 2),
            [u64::MAX - 3..u64::MAX - 1, u64::MAX - 1..u64::MAX]
        );
    }
}
