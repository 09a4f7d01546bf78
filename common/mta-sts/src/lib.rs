//! MTA-STS (RFC 8461) as text: a policy file, the `_mta-sts` TXT record
//! that announces one, and the HTTP/1.1 response that carries it — the
//! parsers of what the network sends, kept apart from postern-remote's
//! fetching so they can be fuzzed and tested alone — and the cache file
//! postern-remote keeps (`[remote] state_dir/mta-sts/DOMAIN`), which
//! `postern-admin explain --route` reads too.

use std::path::{Path, PathBuf};

impl Mode {
    /// As the policy file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A policy as cached: the TXT record's id it came with, when it was
/// fetched (unix seconds), and the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub id: String,
    pub fetched: u64,
    pub policy: Policy,
}

impl Cached {
    /// Still within its max_age at `now`.
    pub fn fresh(&self, now: u64) -> bool {
        now < self.fetched.saturating_add(self.policy.max_age)
    }
}

/// Where `domain`'s policy is cached.
pub fn cache_path(state_dir: &Path, domain: &str) -> PathBuf {
    state_dir.join("mta-sts").join(domain)
}

/// The cache file's text: `id ID`, `fetched SECS`, a blank line, the
/// policy as fetched.
pub fn cache_text(id: &str, fetched: u64, policy: &str) -> String {
    format!("id {id}\nfetched {fetched}\n\n{policy}")
}

/// A cache file read back; `None` for one that does not read.
pub fn read_cache(text: &str) -> Option<Cached> {
    let (head, policy) = text.split_once("\n\n")?;
    let mut id = None;
    let mut fetched = None;
    for line in head.lines() {
        match line.split_once(' ') {
            Some(("id", value)) => id = Some(value.to_string()),
            Some(("fetched", value)) => fetched = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Cached {
        id: id.unwrap_or_default(),
        fetched: fetched?,
        policy: Policy::parse(policy).ok()?,
    })
}

/// RFC 8461 §3.2: the longest a policy may be cached.
const MAX_AGE: u64 = 31_557_600;
pub const MAX_POLICY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns: a host name, or `*.example.org` for one label more.
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// RFC 8461 §3.2's `key: value` lines.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut version = None;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("not a key: value line: {line:?}"));
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("mode {other:?}")),
                    })
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                "max_age" => {
                    max_age = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("max_age {value:?}"))?
                            .min(MAX_AGE),
                    )
                }
                // Keys a reader does not know are ignored (§3.2).
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no version: STSv1".to_string());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".to_string());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether the policy names `host` (RFC 8461 §4.1: a wildcard stands
    /// for exactly the leftmost label).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => *pattern == host,
            })
    }
}

/// The id of a `v=STSv1; id=...` record.
pub fn record_id(record: &str) -> Option<String> {
    let mut fields = record.split(';').map(str::trim);
    if fields.next()? != "v=STSv1" {
        return None;
    }
    fields
        .find_map(|f| f.strip_prefix("id="))
        .filter(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_string)
}

/// An HTTP/1.x response's body, if it is a 200 of text/plain; chunked or
/// not. A redirect is an error: RFC 8461 §3.3 says not to follow it.
pub fn parse_response(response: &[u8]) -> Result<String, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete HTTP header")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let body = &response[end + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(format!("the server answered {status:?}"));
    }
    let mut chunked = false;
    let mut length = None;
    let mut text_plain = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => chunked = value.contains("chunked"),
            "content-length" => length = value.parse::<usize>().ok(),
            "content-type" => text_plain = value.starts_with("text/plain"),
            _ => {}
        }
    }
    if !text_plain {
        return Err("the policy is not text/plain".to_string());
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = length {
        body.get(..length)
            .ok_or("the policy was cut short")?
            .to_vec()
    } else {
        body.to_vec()
    };
    if body.len() > MAX_POLICY {
        return Err("the policy is larger than 64 KiB".to_string());
    }
    String::from_utf8(body).map_err(|_| "the policy is not UTF-8".to_string())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk was cut short")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "a bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size || out.len() + size > MAX_POLICY {
            return Err("a chunk was cut short, or too long".to_string());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_as_rfc_8461_writes_them() {
        let policy =
            Policy::parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n")
                .unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age, 604_800);
        assert!(policy.allows("mail.example.com"));
        assert!(policy.allows("Mx1.Example.NET."));
        assert!(!policy.allows("a.b.example.net"));
        assert!(!policy.allows("example.net"));
        assert!(!policy.allows("evil.example.com"));
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(Policy::parse("mode: testing\nmx: a.b\nmax_age: 1\n").is_err());
        let none = Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!(none.max_age, MAX_AGE);
    }

    #[test]
    fn the_cache_reads_back_what_it_wrote() {
        let text = cache_text(
            "7",
            1000,
            "version: STSv1\nmode: testing\nmx: a.test\nmax_age: 60\n",
        );
        let cached = read_cache(&text).unwrap();
        assert_eq!((cached.id.as_str(), cached.fetched), ("7", 1000));
        assert_eq!(cached.policy.mode.name(), "testing");
        assert!(cached.fresh(1059) && !cached.fresh(1060));
        assert_eq!(read_cache("junk"), None);
    }

    #[test]
    fn records_and_responses() {
        assert_eq!(
            record_id("v=STSv1; id=20160831085700Z;"),
            Some("20160831085700Z".into())
        );
        assert_eq!(record_id("v=spf1 -all"), None);
        assert_eq!(record_id("v=STSv1; id=bad-id"), None);
        let ok =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello extra";
        assert_eq!(parse_response(ok).unwrap(), "hello");
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), "hello");
        let moved = b"HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\n\r\n";
        assert!(parse_response(moved).unwrap_err().contains("301"));
        let html = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>";
        assert!(parse_response(html).is_err());
    }
}
