//! The kinds of port of the suite's servers: what `[smtpd] listen`,
//! `[pop3d] listen` and `[imapd] listen` entries may name. Here, beside
//! the parser, so that the servers and postern.toml's validation read one
//! list.

use crate::PortKind;

/// What an SMTP port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpPort {
    /// Port 25: mail from other hosts, and relaying for those allowed.
    Mx,
    /// RFC 6409 submission (587): MAIL needs AUTH, unless the client may
    /// relay anyway (a trusted network, a POP-before-SMTP login).
    Submission,
    /// Submission over implicit TLS (RFC 8314, port 465).
    Smtps,
}

impl SmtpPort {
    /// Whether MAIL needs AUTH from a client that may not relay.
    pub fn is_submission(self) -> bool {
        matches!(self, SmtpPort::Submission | SmtpPort::Smtps)
    }
}

impl PortKind for SmtpPort {
    const DEFAULT: SmtpPort = SmtpPort::Mx;
    const WORDS: &'static str = "mx, submission or smtps";

    fn word(self) -> &'static str {
        match self {
            SmtpPort::Mx => "mx",
            SmtpPort::Submission => "submission",
            SmtpPort::Smtps => "smtps",
        }
    }

    fn named(word: &str) -> Option<SmtpPort> {
        match word {
            "mx" | "smtp" => Some(SmtpPort::Mx),
            "submission" => Some(SmtpPort::Submission),
            "smtps" | "submissions" => Some(SmtpPort::Smtps),
            _ => None,
        }
    }

    fn of_port(port: u16) -> SmtpPort {
        match port {
            587 => SmtpPort::Submission,
            465 => SmtpPort::Smtps,
            _ => SmtpPort::Mx,
        }
    }
}

/// What a POP3 port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop3Port {
    Pop3,
    /// Implicit TLS (RFC 8314, port 995).
    Pop3s,
}

impl PortKind for Pop3Port {
    const DEFAULT: Pop3Port = Pop3Port::Pop3;
    const WORDS: &'static str = "pop3 or pop3s";

    fn word(self) -> &'static str {
        match self {
            Pop3Port::Pop3 => "pop3",
            Pop3Port::Pop3s => "pop3s",
        }
    }

    fn named(word: &str) -> Option<Pop3Port> {
        match word {
            "pop3" => Some(Pop3Port::Pop3),
            "pop3s" => Some(Pop3Port::Pop3s),
            _ => None,
        }
    }

    fn of_port(port: u16) -> Pop3Port {
        if port == 995 {
            Pop3Port::Pop3s
        } else {
            Pop3Port::Pop3
        }
    }
}

/// What an IMAP port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapPort {
    Imap,
    /// Implicit TLS (RFC 8314, port 993).
    Imaps,
}

impl PortKind for ImapPort {
    const DEFAULT: ImapPort = ImapPort::Imap;
    const WORDS: &'static str = "imap or imaps";

    fn word(self) -> &'static str {
        match self {
            ImapPort::Imap => "imap",
            ImapPort::Imaps => "imaps",
        }
    }

    fn named(word: &str) -> Option<ImapPort> {
        match word {
            "imap" | "imap2" => Some(ImapPort::Imap),
            "imaps" => Some(ImapPort::Imaps),
            _ => None,
        }
    }

    fn of_port(port: u16) -> ImapPort {
        if port == 993 {
            ImapPort::Imaps
        } else {
            ImapPort::Imap
        }
    }
}
