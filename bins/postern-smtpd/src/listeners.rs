//! What each SMTP port is for (`[smtpd] listen`, systemd's socket names,
//! the well-known port numbers); postern-listen binds and passes them.

use postern_listen::PortKind;

pub type Listen = postern_listen::Listen<Kind>;

/// What a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail from other hosts, and relaying for those allowed.
    Mx,
    /// RFC 6409 submission (587): MAIL needs AUTH, unless the client may
    /// relay anyway (a trusted network, a POP-before-SMTP login).
    Submission,
    /// Submission over implicit TLS (RFC 8314, port 465).
    Smtps,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mx => "mx",
            Kind::Submission => "submission",
            Kind::Smtps => "smtps",
        }
    }

    /// Whether MAIL needs AUTH from a client that may not relay.
    pub fn is_submission(self) -> bool {
        matches!(self, Kind::Submission | Kind::Smtps)
    }
}

impl PortKind for Kind {
    const DEFAULT: Kind = Kind::Mx;
    const WORDS: &'static str = "mx, submission or smtps";

    fn named(word: &str) -> Option<Kind> {
        match word {
            "mx" | "smtp" => Some(Kind::Mx),
            "submission" => Some(Kind::Submission),
            "smtps" | "submissions" => Some(Kind::Smtps),
            _ => None,
        }
    }

    fn of_port(port: u16) -> Kind {
        match port {
            587 => Kind::Submission,
            465 => Kind::Smtps,
            _ => Kind::Mx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_listen::parse;

    #[test]
    fn specs() {
        let listen: Listen = parse("0.0.0.0:25").unwrap();
        assert_eq!(listen.kind, Kind::Mx);
        assert_eq!(
            parse::<Kind>("[::]:587 submission").unwrap().kind,
            Kind::Submission
        );
        assert_eq!(parse::<Kind>("[::]:465 smtps").unwrap().kind, Kind::Smtps);
        assert!(parse::<Kind>("127.0.0.1:25 lmtp").is_err());
        assert_eq!(Kind::of_port(465), Kind::Smtps);
    }
}
