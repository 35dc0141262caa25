//! `index.html` as it is served: asset links made absolute under the base
//! path, the base path and the terminal flag stamped on `<html>`, and the
//! Content-Security-Policy with the hash of each inline script of the page
//! as served (control-ui.md §1.3).

use sha2::{Digest, Sha256};

/// The files at the UI's root that `index.html` links with `./` and that
/// get `?v=<build id>` (as OpenClaw stamps them).
const ROOT_PUBLIC: &[&str] = &[
    "apple-touch-icon.png",
    "favicon-32.png",
    "favicon.ico",
    "favicon.svg",
    "manifest.webmanifest",
    "sw.js",
];

/// The page and the CSP that goes with it.
pub struct Page {
    pub html: String,
    pub csp: String,
}

/// The build id the UI was stamped with (`<html data-openclaw-control-ui-build-id>`).
fn build_id(html: &str) -> Option<&str> {
    let attr = "data-openclaw-control-ui-build-id=\"";
    let start = html.find(attr)? + attr.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

/// Rewrites `html` for `base` (`""` or `/x`).
pub fn render(html: &str, base: &str) -> Page {
    let version = build_id(html)
        .map(|b| {
            format!(
                "?v={}",
                url::form_urlencoded::byte_serialize(b.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    let mut out = html.replace("\"./assets/", &format!("\"{base}/assets/"));
    for f in ROOT_PUBLIC {
        out = out.replace(&format!("\"./{f}\""), &format!("\"{base}/{f}{version}\""));
    }
    // The base path for the UI's own links, and the terminal off (the
    // runtime config says so too: the two must agree or the UI reloads).
    let stamp = format!(
        "<html data-openclaw-control-ui-base-path=\"{}\" data-openclaw-terminal-enabled=\"false\"",
        attr_escape(base)
    );
    if let Some(i) = out.find("<html") {
        out.replace_range(i..i + "<html".len(), &stamp);
    }
    let csp = csp(&inline_script_hashes(&out));
    Page { html: out, csp }
}

fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// `sha256-<base64>` of the body of each `<script>` without `src`.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    use base64::Engine;
    let mut out = vec![];
    let mut rest = html;
    while let Some(i) = rest.find("<script") {
        rest = &rest[i..];
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let body_start = tag_end + 1;
        let Some(close) = rest[body_start..].find("</script") else {
            break;
        };
        let body = &rest[body_start..body_start + close];
        if !tag.contains(" src=") && !tag.contains("\tsrc=") && !tag.contains("\nsrc=") {
            let d = Sha256::digest(body.as_bytes());
            out.push(format!(
                "sha256-{}",
                base64::engine::general_purpose::STANDARD.encode(d)
            ));
        }
        rest = &rest[body_start + close..];
    }
    out
}

/// OpenClaw's Control UI policy (terminal off: no `wasm-unsafe-eval`).
fn csp(hashes: &[String]) -> String {
    let scripts: String = hashes.iter().map(|h| format!(" '{h}'")).collect();
    format!(
        "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; \
         frame-src 'self' http: https:; script-src 'self'{scripts}; \
         style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; \
         img-src 'self' data: blob: https:; media-src 'self' data: blob:; \
         font-src 'self' https://fonts.gstatic.com; worker-src 'self'; \
         connect-src 'self' ws: wss: data: https://api.openai.com https://tweakcn.com"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<!doctype html>\n<html data-openclaw-control-ui-build-id=\"2026.9.6-x y\" lang=\"en\">\n<head>\
        <link rel=\"icon\" href=\"./favicon.svg\" />\
        <script data-cfasync=\"false\">var a = 1;</script>\
        <script type=\"module\" crossorigin src=\"./assets/index-A.js\"></script>\
        <link rel=\"modulepreload\" href=\"./assets/core-B.js\">\
        </head><body><script>\nshow();\n</script></body></html>";

    #[test]
    fn links_become_absolute_and_the_html_is_stamped() {
        let p = render(PAGE, "/openclaw");
        assert!(
            p.html.contains("src=\"/openclaw/assets/index-A.js\""),
            "{}",
            p.html
        );
        assert!(p.html.contains("href=\"/openclaw/assets/core-B.js\""));
        assert!(p
            .html
            .contains("href=\"/openclaw/favicon.svg?v=2026.9.6-x+y\""));
        assert!(p.html.contains(
            "<html data-openclaw-control-ui-base-path=\"/openclaw\" data-openclaw-terminal-enabled=\"false\" data-openclaw-control-ui-build-id="
        ));
        let root = render(PAGE, "");
        assert!(root.html.contains("src=\"/assets/index-A.js\""));
        assert!(root
            .html
            .contains("data-openclaw-control-ui-base-path=\"\""));
    }

    #[test]
    fn the_csp_holds_the_hash_of_each_inline_script_as_served() {
        let p = render(PAGE, "");
        let hashes = inline_script_hashes(&p.html);
        assert_eq!(hashes.len(), 2, "the module script has a src");
        use base64::Engine;
        let expect = |body: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
            )
        };
        assert!(p.csp.contains(&expect("var a = 1;")), "{}", p.csp);
        assert!(p.csp.contains(&expect("\nshow();\n")), "{}", p.csp);
        assert!(p.csp.contains("connect-src 'self' ws: wss:"));
        assert!(p.csp.starts_with("default-src 'self'; base-uri 'none';"));
    }
}
