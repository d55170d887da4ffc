//! The `Range` header: which bytes of a file a request asks for.

use std::ops::Range;

/// More ranges than this in one request get the whole file: a request for
/// hundreds of small ranges costs the server a part header each (RFC 9110
/// section 14.2 lets a server ignore such a `Range`).
pub(crate) const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The whole file: no byte ranges (another unit, too many ranges, or
    /// ranges that cover the file).
    Full,
    /// These parts of the file: non-empty, in order, none overlapping or
    /// adjacent (such ones are merged).
    Ranges(Vec<Range<u64>>),
    /// No range lies inside the file, or the header is malformed: 416.
    Unsatisfiable,
}

/// Reads a `Range` header value against a file of `len` bytes: `bytes=`
/// followed by a list of `a-b`, `a-` and `-n` (the last `n` bytes).
pub(crate) fn select(value: &[u8], len: u64) -> Selection {
    let Ok(value) = std::str::from_utf8(value) else {
        return Selection::Unsatisfiable;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return Selection::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Selection::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return Selection::Unsatisfiable;
    }
    if specs.len() > MAX_RANGES {
        return Selection::Full;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    for spec in specs {
        match parse_spec(spec, len) {
            Spec::Malformed => return Selection::Unsatisfiable,
            Spec::Outside => {}
            Spec::Inside(range) => ranges.push(range),
        }
    }
    let ranges = merge(ranges);
    match ranges.as_slice() {
        [] => Selection::Unsatisfiable,
        [only] if *only == (0..len) => Selection::Full,
        _ => Selection::Ranges(ranges),
    }
}

enum Spec {
    Malformed,
    /// Well formed, but no byte of it is in the file.
    Outside,
    Inside(Range<u64>),
}

/// One `a-b`, `a-` or `-n`, clamped to the file.
fn parse_spec(spec: &str, len: u64) -> Spec {
    let Some((first, last)) = spec.split_once('-') else {
        return Spec::Malformed;
    };
    let number = |s: &str| match !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse::<u64>().ok(),
        false => None,
    };
    let range = match (first, last) {
        ("", suffix) => match number(suffix) {
            Some(0) => return Spec::Outside,
            Some(n) => len.saturating_sub(n)..len,
            None => return Spec::Malformed,
        },
        (first, "") => match number(first) {
            Some(first) => first..len,
            None => return Spec::Malformed,
        },
        (first, last) => match (number(first), number(last)) {
            (Some(first), Some(last)) if first <= last => first..last.saturating_add(1).min(len),
            _ => return Spec::Malformed,
        },
    };
    if range.start >= len {
        return Spec::Outside;
    }
    Spec::Inside(range)
}

/// Sorts ranges and merges the ones that overlap or touch, so that no byte
/// is sent twice however the ranges were written.
fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|range| range.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(range: Range<u64>) -> Selection {
        Selection::Ranges(std::iter::once(range).collect())
    }

    #[test]
    fn select_reads_the_three_forms_and_clamps() {
        let cases: [(&str, u64, Selection); 12] = [
            ("bytes=0-9", 100, one(0..10)),
            ("bytes=90-200", 100, one(90..100)),
            ("bytes=50-", 100, one(50..100)),
            ("bytes=-500", 100, Selection::Full),
            ("bytes=-5", 100, one(95..100)),
            ("BYTES = 1-1", 100, one(1..2)),
            ("bytes=+1-2", 100, Selection::Unsatisfiable),
            ("bytes=-", 100, Selection::Unsatisfiable),
            (
                "bytes=99999999999999999999999-",
                100,
                Selection::Unsatisfiable,
            ),
            ("bytes=1-18446744073709551615", 100, one(1..100)),
            ("bytes=0-", 0, Selection::Unsatisfiable),
            ("items=0-5", 100, Selection::Full),
        ];
        for (header, len, expected) in cases {
            assert_eq!(
                select(header.as_bytes(), len),
                expected,
                "{header} of {len}"
            );
        }
    }

    #[test]
    fn several_ranges_are_sorted_merged_and_the_outside_ones_dropped() {
        let select = |header: &str| select(header.as_bytes(), 100);
        assert_eq!(
            select("bytes=50-59, 0-9"),
            Selection::Ranges(vec![0..10, 50..60])
        );
        assert_eq!(select("bytes=0-9,5-19,20-29,200-300"), one(0..30));
        assert_eq!(select("bytes=200-300,-0"), Selection::Unsatisfiable);
        assert_eq!(select("bytes=0-9,x"), Selection::Unsatisfiable);
        assert_eq!(select("bytes=0-49,50-"), Selection::Full);
        let many = vec!["0-0"; MAX_RANGES + 1].join(",");
        assert_eq!(select(&format!("bytes={many}")), Selection::Full);
    }

    /// A spec the model understands, and how it is written.
    #[derive(Debug, Clone)]
    enum ModelSpec {
        FromTo(u64, u64),
        From(u64),
        Last(u64),
    }

    impl ModelSpec {
        fn text(&self) -> String {
            match self {
                ModelSpec::FromTo(a, b) => format!("{a}-{b}"),
                ModelSpec::From(a) => format!("{a}-"),
                ModelSpec::Last(n) => format!("-{n}"),
            }
        }

        /// The bytes of a `len`-byte file it names, one by one.
        fn bytes(&self, len: u64) -> Vec<u64> {
            match *self {
                ModelSpec::FromTo(a, b) => (a..=b).filter(|&i| i < len).collect(),
                ModelSpec::From(a) => (a..len).collect(),
                ModelSpec::Last(n) => (len.saturating_sub(n)..len).collect(),
            }
        }
    }

    fn spec() -> impl Strategy<Value = ModelSpec> {
        prop_oneof![
            (0..120u64, 0..120u64).prop_map(|(a, b)| ModelSpec::FromTo(a.min(b), a.max(b))),
            (0..120u64).prop_map(ModelSpec::From),
            (0..120u64).prop_map(ModelSpec::Last),
        ]
    }

    proptest! {
        /// Against a model that lists the requested bytes one by one: the
        /// selection covers exactly the bytes that any spec names, with
        /// sorted, disjoint, non-adjacent ranges.
        #[test]
        fn selection_covers_exactly_the_requested_bytes(
            specs in prop::collection::vec(spec(), 1..=MAX_RANGES),
            len in 0..100u64,
        ) {
            let header = format!(
                "bytes={}",
                specs.iter().map(ModelSpec::text).collect::<Vec<_>>().join(", ")
            );
            let mut wanted: Vec<u64> = specs.iter().flat_map(|s| s.bytes(len)).collect();
            wanted.sort_unstable();
            wanted.dedup();
            match select(header.as_bytes(), len) {
                Selection::Unsatisfiable => prop_assert!(wanted.is_empty()),
                Selection::Full => prop_assert_eq!(wanted, (0..len).collect::<Vec<_>>()),
                Selection::Ranges(ranges) => {
                    for pair in ranges.windows(2) {
                        prop_assert!(pair[0].end < pair[1].start);
                    }
                    prop_assert!(ranges.iter().all(|r| !r.is_empty() && r.end <= len));
                    let got: Vec<u64> = ranges.into_iter().flatten().collect();
                    prop_assert_eq!(got, wanted);
                }
            }
        }

        /// Whatever the bytes, select answers and never panics.
        #[test]
        fn select_never_panics(value in prop::collection::vec(any::<u8>(), 0..40), len: u64) {
            let _ = select(&value, len);
        }
    }
}
