//! The UI's files, embedded in the binary (no CDN, no build step): `ui/` in this crate.

use edge_http::Response;

/// Every embedded file: URL path, content type, bytes.
pub const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/app.css"),
    ),
    (
        "/assets/favicon.svg",
        "image/svg+xml",
        include_bytes!("../ui/favicon.svg"),
    ),
];

/// The budget for all of them together, in bytes.
pub const BUDGET: usize = 150 * 1024;

/// Total embedded size, in bytes.
pub fn total() -> usize {
    FILES.iter().map(|(_, _, b)| b.len()).sum()
}

/// `GET path`: an embedded file, `index.html` for `/` (and `/index.html`), else 404.
pub fn serve(path: &str) -> Response {
    let path = if path == "/index.html" { "/" } else { path };
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => {
            Response::bytes(200, content_type, bytes.to_vec()).with("Cache-Control", "no-cache")
        }
        None => Response::error(404, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_fits_its_budget() {
        println!("embedded UI: {} bytes of {BUDGET}", total());
        assert!(
            total() <= BUDGET,
            "embedded UI is {} bytes, over {BUDGET}",
            total()
        );
    }
}
