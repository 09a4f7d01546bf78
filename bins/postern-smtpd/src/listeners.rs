//! What each SMTP port is for (`[smtpd] listen`, systemd's socket names,
//! the well-known port numbers); postern-listen binds and passes them.

pub type Listen = postern_listen::Listen<Kind>;

pub use postern_listen::SmtpPort as Kind;

#[cfg(test)]
mod tests {
    use super::*;
    use postern_listen::{PortKind, parse};

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
