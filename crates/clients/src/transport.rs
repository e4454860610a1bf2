//! What went wrong on the wire, in words: reqwest's own text is only "error sending request", while its
//! source chain says whether the connection was refused, the name did not resolve or TLS failed. Shared by
//! both clients.

use std::error::Error as _;

/// `error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)`.
/// Never a URL: reqwest's is dropped, and any `http://` or `https://` word a cause carries is replaced (a
/// Moodle URL carries the token in its query).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    without_urls(&text)
}

/// Replaces each word that starts with `http://` or `https://` by `<url>`.
fn without_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["http://", "https://"].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&rest[..at]);
        out.push_str("<url>");
        let end = rest[at..].find(|c: char| c.is_whitespace() || c == ')' || c == '"').map_or(rest.len(), |n| at + n);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_replaced_whole() {
        assert_eq!(
            without_urls("error for url (https://m.example/webservice/rest/server.php?wstoken=abc) after http://x"),
            "error for url (<url>) after <url>"
        );
        assert_eq!(without_urls("no address here"), "no address here");
    }

    #[test]
    fn a_refused_connection_says_so() {
        // A port just closed: nobody listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt
            .block_on(reqwest::Client::new().get(format!("http://127.0.0.1:{port}/?wstoken=secret")).send())
            .unwrap_err();
        let text = describe(e);
        assert!(text.starts_with("error sending request"), "{text}");
        assert!(text.to_lowercase().contains("connect"), "{text}");
        assert!(!text.contains("secret") && !text.contains("127.0.0.1"), "{text}");
    }
}
