//! The POP3 proxy (`user#host`) under `postern up`, against a second
//! postern-pop3d as the other server: byte-exact mail through it, APOP
//! and USER/PASS, TLS to the other server with its certificate checked,
//! and the refusals: a host off the list, a server without trusted TLS,
//! failed logins from one IP.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use crate::pop3d::{
    add_plain_account, deliver_all, deliver_to, held_session_status, hex, pop_at, pop_from,
    status_field, stored, wait_for_port,
};
use crate::suite::{Suite, python};
use crate::util::messages;

/// A sandbox whose `[pop3d]` proxies to its own instance `remote` on
/// another port (with `remote_settings`, as `apop = true`), clients on
/// loopback allowed cleartext logins, and the lines of `more`; the
/// remote's port, once it listens.
fn start_with_remote(remote_settings: &str, more: &[&str]) -> (Suite, u16) {
    let mut table = vec!["listen = [\"127.0.0.1:{PORT1}\"]", "proxy_hosts = []"];
    table.extend(Some(remote_settings).filter(|s| !s.is_empty()));
    let remote = format!("pop3d.instances.remote = {{ {} }}", table.join(", "));
    let mut settings = vec![
        "pop3d.proxy_hosts = [\"127.0.0.1:{PORT1}\"]",
        "pop3d.cleartext_networks = [\"127.0.0.0/8\"]",
        &remote,
    ];
    settings.extend_from_slice(more);
    let s = Suite::start(&settings);
    let port = s.extra_port(1);
    wait_for_port(port);
    (s, port)
}

/// The POP3 proxy against a second postern-pop3d (an instance on its own
/// port, offering APOP): byte-exact RETR through it, APOP where it works,
/// USER/PASS after APOP failed once, a host off the list refused, no
/// POP-before-SMTP entry for the client, and, as root, the proxy user
/// with no capability.
#[test]
fn user_at_host_logins_are_proxied_to_an_allowed_pop3_server() {
    let (s, remote) = start_with_remote("apop = true", &[]);
    deliver_all(&s);
    add_plain_account(&s, "plain", "");
    deliver_to(
        &s,
        "plain@example.test",
        &[b"Subject: via the proxy\n\n.dot line\n"],
    );
    // A client at 127.0.0.2: the proxy connects out from 127.0.0.1.
    let fetch = |user: &str, password: &str| pop_from(&s, "127.0.0.2", user, password);
    let target = format!("#127.0.0.1:{remote}");
    let crlf = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .replace('\n', "\r\n")
    };
    let fetched = |out: &str| -> Vec<String> {
        assert!(out.ends_with("ok\n"), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        lines[1..lines.len() - 1]
            .iter()
            .map(|l| String::from_utf8(hex(l)).unwrap())
            .collect()
    };
    // A wrong password: the other server's refusal, and APOP is not
    // given up for it.
    let out = fetch(&format!("plain@example.test{target}"), "wrong");
    assert!(out.starts_with("-ERR [AUTH]"), "{out}");
    // APOP first: the {PLAIN} account can answer it. RETR byte for byte
    // as the other server's Maildir holds it.
    let out = fetch(&format!("plain@example.test{target}"), "tanstaaf");
    let plain = s.demo().join("../../plain/Maildir");
    let held: Vec<String> = messages(&plain).iter().map(|(_, m)| crlf(m)).collect();
    assert_eq!(held.len(), 1);
    assert!(held[0].ends_with("Subject: via the proxy\r\n\r\n.dot line\r\n"));
    assert_eq!(fetched(&out), held);
    // Over TLS, by STLS: the other server offers it, and its certificate
    // (the sandbox's own, which is the proxy's proxy_ca_file) checks out.
    s.wait_for_log(&format!(
        "proxy to 127.0.0.1:{remote}: logged in by APOP over TLSv1_3"
    ));
    // demo's password is hashed: APOP fails, USER/PASS works, and the
    // host is asked by USER/PASS from then on.
    let out = fetch(&format!("demo@example.test{target}"), &s.password());
    assert_eq!(
        fetched(&out),
        stored(&s).iter().map(|m| crlf(m)).collect::<Vec<_>>()
    );
    s.wait_for_log("APOP failed; USER/PASS from now on");
    let out = fetch(&format!("plain@example.test{target}"), "tanstaaf");
    assert_eq!(fetched(&out).len(), 1);
    let log = s.wait_for_log_count("logged in by USER/PASS", 2);
    assert_eq!(log.matches("logged in by USER/PASS").count(), 2, "{log}");
    assert_eq!(log.matches("APOP failed").count(), 1, "{log}");
    // Over POP3S: the relay reads the client through TLS; a large
    // message and pipelined commands come through whole.
    let big: String = (0..4000)
        .map(|i| format!("line {i} of a long message\n"))
        .collect();
    deliver_to(
        &s,
        "plain@example.test",
        &[format!("Subject: big\n\n{big}").as_bytes()],
    );
    let out = python(
        r#"
import poplib, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
pop = poplib.POP3_SSL("127.0.0.1", int(sys.argv[1]), context=context)
pop.user(sys.argv[2])
pop.pass_("tanstaaf")
count, size = pop.stat()
total = 0
for n in range(1, count + 1):
    _, lines, _ = pop.retr(n)
    total += len(b"\r\n".join(lines) + b"\r\n")
assert total == size, (total, size)
# Pipelined: three commands in one write, three answers.
pop.sock.sendall(b"NOOP\r\nSTAT\r\nNOOP\r\n")
answers = [pop._getresp() for _ in range(3)]
assert answers[1].startswith(b"+OK %d " % count), answers
pop.quit()
print(count, size)
print("ok")
"#,
        &[&s.port("POP3S"), &format!("plain@example.test{target}")],
    );
    assert!(out.starts_with("2 "), "{out}");
    // A host off the list.
    let out = fetch("demo@example.test#127.0.0.1:9", &s.password());
    assert_eq!(
        out,
        "-ERR [AUTH] Proxying to that host is not allowed\nok\n"
    );
    // As root: the proxied session is the proxy user, with no capability.
    if crate::util::is_root() {
        let user = format!("plain@example.test{target}");
        let status = held_session_status(&s, Some((&user, "tanstaaf")));
        let field = |key: &str| status_field(&status, key);
        let proxy = crate::sandbox::role_uid(&s.etc(), "postern-proxy");
        assert_eq!(
            field("Uid:"),
            format!("{proxy} {proxy} {proxy} {proxy}"),
            "{status}"
        );
        assert_eq!(field("Groups:"), proxy.to_string(), "{status}");
        assert_eq!(field("CapEff:"), "0000000000000000");
        assert_eq!(field("CapPrm:"), "0000000000000000");
    }
    // The client's IP was never recorded for POP-before-SMTP (the other
    // server's login recorded the proxy's own, 127.0.0.1).
    let relayers = std::fs::read_to_string(s.dir().join("var/relay/relayers")).unwrap_or_default();
    assert!(!relayers.contains("127.0.0.2"), "{relayers}");
    s.stop();
}

#[test]
fn failed_proxied_logins_are_throttled_per_client_ip() {
    let (s, remote) = start_with_remote(
        "",
        &[
            "auth.failure_delay_after = 1",
            "auth.failure_delay = \"1s\"",
            "auth.max_failures_per_ip = 2",
        ],
    );
    let user = format!("demo@example.test#127.0.0.1:{remote}");
    let attempt = |password: &str| -> (String, Duration) {
        let started = std::time::Instant::now();
        let out = pop_from(&s, "127.0.0.2", &user, password);
        (out.lines().next().unwrap().to_string(), started.elapsed())
    };
    let (answer, _) = attempt("wrong");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    let (answer, took) = attempt("wrong");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    // The right password, but 127.0.0.2 has used up its failures: refused
    // here, without a try at the other server.
    let (answer, _) = attempt(&s.password());
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer}");
    s.wait_for_log("ip=127.0.0.2: too many failed logins");
    s.stop();
}

/// A POP3 server without usable TLS, on a loopback port: it refuses STLS
/// on its first connection; on its second it says +OK and, in the same
/// write, a forged line, as a man in the middle would. The lines each
/// connection was sent, one message per connection.
fn start_tls_refuser() -> (u16, std::sync::mpsc::Receiver<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for answer in ["-ERR no TLS here\r\n", "+OK begin TLS\r\n+OK forged\r\n"] {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(20)));
            let _ = socket.write_all(b"+OK fake POP3 server\r\n");
            let mut seen = Vec::new();
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                let command = line.trim_end().to_string();
                let reply = if command == "STLS" {
                    answer
                } else {
                    "-ERR\r\n"
                };
                let _ = socket.write_all(reply.as_bytes());
                seen.push(command);
                line.clear();
            }
            if sender.send(seen).is_err() {
                return;
            }
        }
    });
    (port, receiver)
}

/// TLS to the other server by default, its certificate checked against
/// proxy_ca_file: no password to a server that refuses STLS or forges a
/// line after its +OK, none to a certificate the CA file does not vouch
/// for; proxy_tls = "none" for plain TCP; bad settings stop the start.
#[test]
fn proxied_logins_go_over_tls_whose_certificate_is_checked() {
    let (refuser, refuser_saw) = start_tls_refuser();
    let elsewhere = tempfile::tempdir().unwrap();
    // A certificate for the same names, from another key: not the other
    // server's.
    let stranger = elsewhere.path().join("stranger.pem");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&stranger, certified.cert.pem()).unwrap();
    // As root, the other server also on port 995, where TLS comes first
    // (unless some POP3S server of the host's already has that port).
    let implicit =
        crate::util::is_root() && std::net::TcpListener::bind(("127.0.0.1", 995)).is_ok();
    let mut settings = vec![
        format!(
            "pop3d.proxy_hosts = [\"127.0.0.1:{{PORT1}}\", \"127.0.0.1:{refuser}\", \"127.0.0.1:995\"]"
        ),
        "pop3d.cleartext_networks = [\"127.0.0.0/8\"]".to_string(),
        "pop3d.instances.remote = { listen = [\"127.0.0.1:{PORT1}\"], apop = true, proxy_hosts = [] }"
            .to_string(),
        format!(
            "pop3d.instances.wary = {{ listen = [\"127.0.0.1:{{PORT2}}\"], proxy_ca_file = \"{}\" }}",
            stranger.display()
        ),
        "pop3d.instances.plain = { listen = [\"127.0.0.1:{PORT3}\"], proxy_tls = \"none\" }"
            .to_string(),
    ];
    if implicit {
        settings.push(
            "pop3d.instances.implicit = { listen = [\"127.0.0.1:995 pop3s\"], apop = true, proxy_hosts = [] }"
                .to_string(),
        );
    }
    let s = Suite::start(&settings.iter().map(String::as_str).collect::<Vec<_>>());
    let [remote, wary, plain] = [1, 2, 3].map(|n| s.extra_port(n));
    for port in [remote, wary, plain] {
        wait_for_port(port);
    }
    // An account APOP works for, on servers that offer APOP.
    add_plain_account(&s, "plain", "");
    deliver_to(&s, "plain@example.test", &[b"Subject: hi\n\nhello\n"]);
    let plain_user = |port: u16| format!("plain@example.test#127.0.0.1:{port}");
    if implicit {
        // TLS from the first byte, then APOP.
        wait_for_port(995);
        let out = pop_from(&s, "127.0.0.2", &plain_user(995), "tanstaaf");
        assert!(out.starts_with("+OK"), "{out}");
        s.wait_for_log("proxy to 127.0.0.1:995: logged in by APOP over TLSv1_3");
    }
    // STLS, the certificate (the sandbox's own, which is the proxy's
    // proxy_ca_file) checked, and APOP inside it.
    let out = pop_from(&s, "127.0.0.2", &plain_user(remote), "tanstaaf");
    assert!(out.starts_with("+OK"), "{out}");
    s.wait_for_log(&format!(
        "proxy to 127.0.0.1:{remote}: logged in by APOP over TLSv1_3"
    ));
    let user = format!("demo@example.test#127.0.0.1:{remote}");
    // No STLS, then a forged line behind STLS's +OK: refused, and nothing
    // but STLS was ever sent there.
    let fake = format!("demo@example.test#127.0.0.1:{refuser}");
    for _ in 0..2 {
        let out = pop_from(&s, "127.0.0.2", &fake, &s.password());
        assert_eq!(
            out,
            "-ERR [SYS/TEMP] The proxied server offers no TLS\nok\n"
        );
        let saw = refuser_saw.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(saw, ["STLS"]);
    }
    // A certificate the CA file does not vouch for.
    let out = pop_at(&wary.to_string(), "127.0.0.2", &user, &s.password());
    assert_eq!(
        out,
        "-ERR [SYS/TEMP] No trusted TLS with the proxied server\nok\n"
    );
    s.wait_for_log(&format!(
        "proxy to 127.0.0.1:{remote}: TLS: invalid peer certificate"
    ));
    // proxy_tls = "none": plain TCP, as asked.
    let out = pop_at(&plain.to_string(), "127.0.0.2", &user, &s.password());
    assert!(out.starts_with("+OK"), "{out}");
    s.wait_for_log(&format!(
        "proxy to 127.0.0.1:{remote}: logged in by USER/PASS over plain TCP"
    ));
    // A proxy_tls it does not know (refused with its line, as every
    // program and check refuse it), or a CA file it cannot read: the
    // server does not start.
    let toml_path = s.etc().join("postern.toml");
    let original = std::fs::read_to_string(&toml_path).unwrap();
    for (n, (setting, why)) in [
        (
            "proxy_tls = \"maybe\"",
            "[pop3d.instances.proxytls]: \"maybe\" is not one of required or none",
        ),
        (
            "proxy_ca_file = \"/nonexistent.pem\"",
            "proxy_ca_file: /nonexistent.pem",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let port = s.extra_port(4 + n as u16);
        let mut toml = std::fs::OpenOptions::new()
            .append(true)
            .open(s.etc().join("postern.toml"))
            .unwrap();
        let name = setting.split(' ').next().unwrap().replace('_', "");
        writeln!(
            toml,
            "pop3d.instances.{name} = {{ listen = [\"127.0.0.1:{port}\"], {setting} }}"
        )
        .unwrap();
        drop(toml);
        let out = Command::new(crate::util::program("postern-pop3d"))
            .arg("--config")
            .arg(s.etc())
            .args(["--instance", &name])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        std::fs::write(&toml_path, &original).unwrap();
    }
    s.stop();
}

/// Postern behind a POP3 proxy: with the proxy's address in `[auth]
/// proxy_networks`, failures of some of its users do not shut out the
/// others, and their logins let the proxy's address relay for no one.
#[test]
fn a_server_behind_the_proxy_refuses_the_proxys_address_for_no_one() {
    let (s, remote) = start_with_remote(
        "",
        &[
            // The proxy connects out from 127.0.0.1.
            "auth.proxy_networks = [\"127.0.0.1/32\"]",
            "auth.failure_delay_after = 10",
            "auth.max_failures_per_ip = 2",
        ],
    );
    let user = format!("demo@example.test#127.0.0.1:{remote}");
    // One wrong password from each of three clients: each under the
    // proxy's own limit per client, three failures at the other server
    // from the proxy's address.
    for client in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let out = pop_from(&s, client, &user, "wrong");
        assert!(out.starts_with("-ERR [AUTH]"), "{client}: {out}");
    }
    s.wait_for_log_count("login failed: user=<demo@example.test>, ip=127.0.0.1", 3);
    // A fourth client, with the right password, still gets in.
    let out = pop_from(&s, "127.0.0.5", &user, &s.password());
    assert!(out.starts_with("+OK"), "{out}");
    // The login was the proxy's: no relaying for its address.
    let relayers = std::fs::read_to_string(s.dir().join("var/relay/relayers")).unwrap_or_default();
    assert!(!relayers.contains("127.0.0.1"), "{relayers}");
    s.stop();
}
