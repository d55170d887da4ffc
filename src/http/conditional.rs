//! Conditional requests (RFC 9110 section 13): `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since` and
//! `If-Range`, evaluated in the order of section 13.2.2.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};

/// The validators of the file a request is answered from.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// A strong entity tag, quoted.
    pub(crate) etag: String,
    pub(crate) modified: Option<SystemTime>,
}

/// What the preconditions of a GET or HEAD decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    Failed,
    /// 304: the client's copy is current.
    NotModified,
    /// Answer the request; `Range` applies only if `range_applies`
    /// (no `If-Range`, or one that names this version).
    Proceed { range_applies: bool },
}

/// Evaluates the conditional headers of a GET or HEAD.
pub(crate) fn evaluate(headers: &HeaderMap, file: &Validators) -> Precondition {
    if let Some(list) = headers.get(header::IF_MATCH) {
        if !list_matches(list, &file.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) = (
        date(headers.get(header::IF_UNMODIFIED_SINCE)),
        file.modified,
    ) {
        if seconds(modified) > seconds(since) {
            return Precondition::Failed;
        }
    }
    if let Some(list) = headers.get(header::IF_NONE_MATCH) {
        if list_matches(list, &file.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date(headers.get(header::IF_MODIFIED_SINCE)), file.modified)
    {
        if seconds(modified) <= seconds(since) {
            return Precondition::NotModified;
        }
    }
    let range_applies = match headers.get(header::IF_RANGE) {
        None => true,
        Some(value) => if_range_holds(value, file),
    };
    Precondition::Proceed { range_applies }
}

/// `If-Range` holds for a strong tag equal to ours, or for a date equal to
/// our `Last-Modified`.
fn if_range_holds(value: &HeaderValue, file: &Validators) -> bool {
    let bytes = value.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        return bytes == file.etag.as_bytes();
    }
    match (date(Some(value)), file.modified) {
        (Some(date), Some(modified)) => seconds(date) == seconds(modified),
        _ => false,
    }
}

#[derive(Clone, Copy)]
enum Comparison {
    /// Equal tags, neither weak.
    Strong,
    /// Equal tags once `W/` is dropped.
    Weak,
}

/// Whether a list of entity tags (or `*`) names `etag`.
fn list_matches(list: &HeaderValue, etag: &str, comparison: Comparison) -> bool {
    let Ok(list) = list.to_str() else {
        return false;
    };
    list.split(',').map(str::trim).any(|tag| match comparison {
        _ if tag == "*" => true,
        Comparison::Strong => tag == etag,
        Comparison::Weak => tag.strip_prefix("W/").unwrap_or(tag) == etag,
    })
}

fn date(value: Option<&HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.to_str().ok()?).ok()
}

/// HTTP dates have whole seconds.
fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file() -> Validators {
        Validators {
            etag: "\"1-2-3\"".into(),
            modified: Some(UNIX_EPOCH + Duration::from_millis(1_000_000_000_500)),
        }
    }

    fn evaluate_with(headers: &[(header::HeaderName, &str)]) -> Precondition {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        evaluate(&map, &file())
    }

    const PROCEED: Precondition = Precondition::Proceed {
        range_applies: true,
    };

    #[test]
    fn if_match_needs_a_strong_match_or_a_star() {
        let failed = Precondition::Failed;
        assert_eq!(evaluate_with(&[(header::IF_MATCH, "\"1-2-3\"")]), PROCEED);
        assert_eq!(evaluate_with(&[(header::IF_MATCH, "\"x\", *")]), PROCEED);
        assert_eq!(evaluate_with(&[(header::IF_MATCH, "W/\"1-2-3\"")]), failed);
        assert_eq!(evaluate_with(&[(header::IF_MATCH, "\"x\"")]), failed);
    }

    #[test]
    fn dates_compare_in_whole_seconds_and_bad_dates_are_ignored() {
        let at = httpdate::fmt_http_date(file().modified.unwrap());
        let before = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(999_999_999));
        let unmodified = header::IF_UNMODIFIED_SINCE;
        let modified = header::IF_MODIFIED_SINCE;
        assert_eq!(evaluate_with(&[(unmodified.clone(), &at)]), PROCEED);
        let failed = evaluate_with(&[(unmodified.clone(), &before)]);
        assert_eq!(failed, Precondition::Failed);
        assert_eq!(evaluate_with(&[(unmodified, "yesterday")]), PROCEED);
        let current = evaluate_with(&[(modified.clone(), &at)]);
        assert_eq!(current, Precondition::NotModified);
        assert_eq!(evaluate_with(&[(modified.clone(), &before)]), PROCEED);
        assert_eq!(evaluate_with(&[(modified, "garbage")]), PROCEED);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let before = httpdate::fmt_http_date(UNIX_EPOCH);
        let at = httpdate::fmt_http_date(file().modified.unwrap());
        let matching = [
            (header::IF_NONE_MATCH, "W/\"1-2-3\""),
            (header::IF_MODIFIED_SINCE, before.as_str()),
        ];
        assert_eq!(evaluate_with(&matching), Precondition::NotModified);
        let other = [
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_MODIFIED_SINCE, at.as_str()),
        ];
        assert_eq!(evaluate_with(&other), PROCEED);
    }

    proptest::proptest! {
        /// Whatever bytes the conditional headers hold, evaluation answers
        /// and never panics.
        #[test]
        fn any_header_bytes_are_evaluated_without_panicking(
            values in proptest::collection::vec(proptest::collection::vec(32u8..=255, 0..40), 5),
        ) {
            let names = [
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_UNMODIFIED_SINCE,
                header::IF_RANGE,
            ];
            let mut map = HeaderMap::new();
            for (name, value) in names.into_iter().zip(values) {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.insert(name, value);
                }
            }
            let _ = evaluate(&map, &file());
        }
    }

    #[test]
    fn if_range_holds_only_for_this_version() {
        let at = httpdate::fmt_http_date(file().modified.unwrap());
        let stale = Precondition::Proceed {
            range_applies: false,
        };
        assert_eq!(evaluate_with(&[(header::IF_RANGE, "\"1-2-3\"")]), PROCEED);
        assert_eq!(evaluate_with(&[(header::IF_RANGE, &at)]), PROCEED);
        assert_eq!(evaluate_with(&[(header::IF_RANGE, "W/\"1-2-3\"")]), stale);
        assert_eq!(evaluate_with(&[(header::IF_RANGE, "\"x\"")]), stale);
        assert_eq!(evaluate_with(&[(header::IF_RANGE, "soon")]), stale);
    }
}
