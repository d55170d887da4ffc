//! Precompressed siblings (`x.br`, `x.zst`, `x.gz` next to `x`) chosen by
//! `Accept-Encoding`.

use http::header::{self, HeaderMap};

/// A content coding a precompressed sibling can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    Br,
    Zstd,
    Gzip,
}

impl Encoding {
    /// Best first when the client likes several equally.
    const ALL: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file name suffix of the sibling.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }
}

/// The encodings whose siblings a service looks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Precompressed {
    enabled: [bool; 3],
}

impl Precompressed {
    pub(crate) fn enable(&mut self, encoding: Encoding) {
        self.enabled[encoding as usize] = true;
    }

    pub(crate) fn any(&self) -> bool {
        self.enabled.contains(&true)
    }

    /// The enabled encodings the request accepts, most wanted first (by
    /// q-value, then br, zstd, gzip).
    pub(crate) fn preferred(&self, headers: &HeaderMap) -> Vec<Encoding> {
        let mut wanted: Vec<(Encoding, u32)> = Encoding::ALL
            .into_iter()
            .filter(|&encoding| self.enabled[encoding as usize])
            .filter_map(|encoding| Some((encoding, quality(headers, encoding)?)))
            .filter(|&(_, q)| q > 0)
            .collect();
        // Stable: equal q-values keep the order of `ALL`.
        wanted.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
        wanted.into_iter().map(|(encoding, _)| encoding).collect()
    }
}

/// The q-value (in thousandths) that `Accept-Encoding` gives `encoding`,
/// directly or through `*`; `None` if it names neither.
fn quality(headers: &HeaderMap, encoding: Encoding) -> Option<u32> {
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let q = params
                .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .map_or(Some(1000), parse_q);
            let Some(q) = q else { continue };
            if coding.eq_ignore_ascii_case(encoding.token()) {
                return Some(q);
            }
            if coding == "*" {
                star = Some(q);
            }
        }
    }
    star
}

/// A q-value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_q(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u32>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn preferred(accept: &str) -> Vec<Encoding> {
        let mut all = Precompressed::default();
        Encoding::ALL.into_iter().for_each(|e| all.enable(e));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        all.preferred(&headers)
    }

    #[test]
    fn accept_encoding_orders_by_q_then_by_compression() {
        use Encoding::*;
        assert_eq!(preferred("gzip, br"), [Br, Gzip]);
        assert_eq!(preferred("gzip;q=1, br;q=0.5"), [Gzip, Br]);
        assert_eq!(preferred("*;q=0.1, zstd"), [Zstd, Br, Gzip]);
        assert_eq!(preferred("br;q=0, *"), [Zstd, Gzip]);
        assert_eq!(preferred("identity"), []);
        assert_eq!(preferred("gzip;q=2, br;q=x"), []);
    }

    proptest::proptest! {
        /// Whatever bytes `Accept-Encoding` holds, the choice is made
        /// without panicking, and only among the enabled encodings.
        #[test]
        fn any_accept_encoding_is_read_without_panicking(
            value in proptest::collection::vec(32u8..=255, 0..60),
        ) {
            let mut gzip_only = Precompressed::default();
            gzip_only.enable(Encoding::Gzip);
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.insert(header::ACCEPT_ENCODING, value);
            }
            let preferred = gzip_only.preferred(&headers);
            proptest::prop_assert!(preferred.iter().all(|&e| e == Encoding::Gzip));
        }
    }

    #[test]
    fn only_enabled_encodings_are_offered() {
        let mut gzip_only = Precompressed::default();
        assert!(!gzip_only.any());
        gzip_only.enable(Encoding::Gzip);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert_eq!(gzip_only.preferred(&headers), [Encoding::Gzip]);
    }
}
