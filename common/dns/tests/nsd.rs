//! The resolver against a real authoritative server: nsd on loopback,
//! serving a zone with every case the sender must tell apart (two MX
//! hosts, null MX, implicit MX, a CNAME, no such domain, no mail server),
//! and a name server that does not answer. `make test` installs nsd.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use postern_dns::testing::Nsd;
use postern_dns::{Dns, MailHost};

const ZONE: &str = "\
two-mx IN MX 20 mx2.two-mx.test.
two-mx IN MX 10 mx1.two-mx.test.
mx1.two-mx IN A 127.0.0.10
mx2.two-mx IN A 127.0.0.11
mx2.two-mx IN AAAA ::1
null IN MX 0 .
implicit IN A 127.0.0.12
cname-mx IN MX 10 alias.test.
alias IN CNAME real.test.
real IN A 127.0.0.13
nothing IN TXT \"no mail here\"
";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn names(hosts: &[MailHost]) -> Vec<(&str, u16, bool)> {
    hosts
        .iter()
        .map(|h| (h.name.as_str(), h.preference, h.implicit))
        .collect()
}

#[test]
fn mx_null_mx_implicit_mx_cname_and_the_two_kinds_of_absence() {
    let nsd = Nsd::start(ZONE);
    let runtime = runtime();
    runtime.block_on(async {
        let dns = Dns::new(&[nsd.address], Duration::from_secs(3)).unwrap();
        let hosts = dns.mail_hosts("Two-MX.test").await.unwrap();
        assert_eq!(
            names(&hosts),
            [
                ("mx1.two-mx.test", 10, false),
                ("mx2.two-mx.test", 20, false)
            ]
        );
        let addresses = dns.addresses("mx2.two-mx.test").await.unwrap();
        assert_eq!(
            addresses,
            [
                "::1".parse::<std::net::IpAddr>().unwrap(),
                "127.0.0.11".parse().unwrap()
            ],
            "IPv6 first"
        );
        let null = dns.mail_hosts("null.test").await.unwrap_err();
        assert_eq!(null.code.to_string(), "5.1.10", "{null}");
        let implicit = dns.mail_hosts("implicit.test").await.unwrap();
        assert_eq!(names(&implicit), [("implicit.test", 0, true)]);
        let cname = dns.mail_hosts("cname-mx.test").await.unwrap();
        assert_eq!(names(&cname), [("alias.test", 10, false)]);
        let through = dns.addresses("alias.test").await.unwrap();
        assert_eq!(through, ["127.0.0.13".parse::<std::net::IpAddr>().unwrap()]);
        let missing = dns.mail_hosts("missing.test").await.unwrap_err();
        assert_eq!(missing.code.to_string(), "5.1.2", "{missing}");
        assert!(missing.text.contains("does not exist"), "{missing}");
        let nothing = dns.mail_hosts("nothing.test").await.unwrap_err();
        assert_eq!(nothing.code.to_string(), "5.1.2", "{nothing}");
        assert!(nothing.text.contains("no mail server"), "{nothing}");
    });
}

#[test]
fn a_name_server_that_does_not_answer_defers() {
    // A bound UDP socket that never answers, and no TCP listener.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let runtime = runtime();
    let started = Instant::now();
    let status = runtime.block_on(async {
        let dns = Dns::new(&[address], Duration::from_millis(500)).unwrap();
        dns.mail_hosts("two-mx.test").await.unwrap_err()
    });
    assert!(status.is_temporary(), "{status}");
    assert_eq!(status.code.to_string(), "4.4.3", "{status}");
    assert!(started.elapsed() < Duration::from_secs(20));
}
