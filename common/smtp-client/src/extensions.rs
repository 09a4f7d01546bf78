//! What a server's EHLO reply offers (RFC 5321 §4.1.1.1: one keyword a
//! line after the first, parameters after it).

/// The service extensions the client uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    /// SIZE: `Some(0)` when offered without a limit.
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub chunking: bool,
    /// The SASL mechanisms of AUTH, upper case.
    pub auth: Vec<String>,
}

impl Extensions {
    /// From the lines of a 250 reply to EHLO (the first is the greeting).
    pub fn parse(lines: &[String]) -> Extensions {
        let mut offered = Extensions::default();
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => offered.pipelining = true,
                "SIZE" => {
                    offered.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
                }
                "8BITMIME" => offered.eight_bit_mime = true,
                "SMTPUTF8" => offered.smtputf8 = true,
                "DSN" => offered.dsn = true,
                "STARTTLS" => offered.starttls = true,
                "CHUNKING" => offered.chunking = true,
                "AUTH" => offered.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        offered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_any_case_and_their_parameters() {
        let lines: Vec<String> = [
            "mx.example greets you",
            "size 10240000",
            "PIPELINING",
            "8BITMIME",
            "STARTTLS",
            "AUTH PLAIN login",
            "DSN",
            "X-UNKNOWN whatever",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let offered = Extensions::parse(&lines);
        assert_eq!(offered.size, Some(10240000));
        assert!(offered.pipelining && offered.eight_bit_mime && offered.starttls && offered.dsn);
        assert!(!offered.smtputf8 && !offered.chunking);
        assert_eq!(offered.auth, ["PLAIN", "LOGIN"]);
        // The greeting line is not a keyword, and SIZE alone has no limit.
        let bare = Extensions::parse(&["SIZE".to_string(), "SIZE".to_string()]);
        assert_eq!(bare.size, Some(0));
    }
}
