//! `Content-Type` from a file name's extension.

use std::path::Path;

/// A small table of the common web types, by extension.
const TYPES: [(&[&str], &str); 18] = [
    (&["html", "htm"], "text/html; charset=utf-8"),
    (&["txt", "md", "rs", "toml"], "text/plain; charset=utf-8"),
    (&["css"], "text/css; charset=utf-8"),
    (&["js", "mjs"], "text/javascript; charset=utf-8"),
    (&["json"], "application/json"),
    (&["xml"], "application/xml"),
    (&["wasm"], "application/wasm"),
    (&["png"], "image/png"),
    (&["jpg", "jpeg"], "image/jpeg"),
    (&["gif"], "image/gif"),
    (&["webp"], "image/webp"),
    (&["svg"], "image/svg+xml"),
    (&["ico"], "image/x-icon"),
    (&["woff2"], "font/woff2"),
    (&["pdf"], "application/pdf"),
    (&["mp4"], "video/mp4"),
    (&["webm"], "video/webm"),
    (&["mp3"], "audio/mpeg"),
];

const OCTET_STREAM: &str = "application/octet-stream";

/// The type of `path` from [`TYPES`], case-blind; anything else is
/// `application/octet-stream`. Allocates nothing: it runs per response.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    TYPES
        .iter()
        .find(|(extensions, _)| extensions.iter().any(|e| e.eq_ignore_ascii_case(extension)))
        .map_or(OCTET_STREAM, |&(_, content_type)| content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_map_to_types_case_blind_and_unknown_ones_to_octet_stream() {
        assert_eq!(
            content_type(Path::new("a/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.png")), "image/png");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
        assert_eq!(content_type(Path::new("x.bin")), "application/octet-stream");
    }
}
