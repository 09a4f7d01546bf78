//! postern-remote against a real receiving server: Postfix's smtp-sink on
//! a loopback address of its own (127.0.0.10), as the next hop of an
//! outside domain would be. What the sink takes is checked byte for byte
//! in its dump file.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Running, program, run_with_input};

pub struct Sink {
    _child: Running,
    pub port: u16,
    pub dump: std::path::PathBuf,
    /// Its stderr: with `-v`, a `connect` line per connection.
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A port free on 127.0.0.10 and 127.0.0.11.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.10:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if TcpListener::bind(("127.0.0.11", port)).is_ok() {
            return port;
        }
    }
}

/// smtp-sink on 127.0.0.10 with `options`, dumping what it takes.
fn sink(options: &[&str]) -> Sink {
    sink_at("127.0.0.10", free_port(), options)
}

/// smtp-sink on `ip`:`port`.
pub fn sink_at(ip: &str, port: u16, options: &[&str]) -> Sink {
    let dir = tempfile::tempdir().unwrap();
    // The sink writes its dump as the user it becomes.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let dump = dir.path().join("dump");
    let log = dir.path().join("log");
    let mut command = Command::new("/usr/sbin/smtp-sink");
    if crate::util::is_root() {
        command.args(["-u", "nobody"]);
    }
    let child = command
        .args(options)
        .arg("-D")
        .arg(&dump)
        .arg(format!("{ip}:{port}"))
        .arg("10")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sink {
        _child: Running(child),
        port,
        dump,
        log,
        _dir: dir,
    }
}

/// postern-remote to `[127.0.0.10]:port`: its lines.
fn remote(port: u16, recipients: &[&str], message: &[u8]) -> Vec<String> {
    remote_to("[127.0.0.10]", &[], port, recipients, message)
}

/// postern-remote to `destination`, asking `dns` (its `--nameserver`
/// options, if any), every host on `port`: its lines. As root it runs as
/// nobody, as it refuses root.
fn remote_to(
    destination: &str,
    dns: &[String],
    port: u16,
    recipients: &[&str],
    message: &[u8],
) -> Vec<String> {
    let mut command = match crate::util::is_root() {
        true => {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(program("postern-remote"));
            setpriv
        }
        false => Command::new(program("postern-remote")),
    };
    command
        .args(["--helo", "client.test", "--port", &port.to_string()])
        .args(dns)
        .args([destination, "sender@client.test"])
        .args(recipients);
    crate::util::success_lines(run_with_input(&mut command, message))
}

/// The sink's dump once it ends with `tail` (the message and the blank
/// line the sink adds); the test fails if it never does.
pub fn dump_ending(path: &Path, tail: &[u8]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes = std::fs::read(path).unwrap_or_default();
        if bytes.ends_with(tail) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the sink's dump does not end with the message: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_message_reaches_the_next_hop_with_a_result_per_recipient() {
    let sink = sink(&[]);
    let message = b"Subject: outbound\n\nfirst line\n.leading dot\nlast line\n";
    let lines = remote(sink.port, &["a@remote.test", "b@remote.test"], message);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, address) in lines.iter().zip(["a@remote.test", "b@remote.test"]) {
        assert!(
            line.starts_with(&format!("{address}\t250\t2.0.0 ")),
            "{line}"
        );
    }
    // The sink writes the envelope as headers, its Received line, then
    // the message as it came after DATA, unstuffed, with LF line ends.
    let expected = [&message[..], b"\n"].concat();
    let dump = dump_ending(&sink.dump, &expected);
    assert!(dump.contains("X-Helo-Args: client.test\n"), "{dump}");
    assert!(dump.contains("X-Mail-Args: <sender@client.test>"), "{dump}");
    assert!(
        dump.contains("X-Rcpt-Args: <a@remote.test>\nX-Rcpt-Args: <b@remote.test>\n"),
        "{dump}"
    );
    let before = &dump[..dump.len() - expected.len()];
    assert!(
        before.ends_with(")\n") && before.contains("\tby smtp-sink"),
        "{dump:?}"
    );
}

#[test]
fn refused_recipients_and_an_unreachable_host_each_get_their_reason() {
    let refusing = sink(&["-f", "RCPT"]);
    let lines = remote(refusing.port, &["a@remote.test", "b@remote.test"], b"x\n");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(fields[1].starts_with('5'), "{line}");
    }
    // Nothing listens: a temporary failure that names the host.
    let closed = free_port();
    let lines = remote(closed, &["a@remote.test"], b"x\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("a@remote.test\t451\t4.4.1 connect to 127.0.0.10"),
        "{}",
        lines[0]
    );
}

#[test]
fn it_refuses_to_run_as_root() {
    if !crate::util::is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let out = run_with_input(
        Command::new(program("postern-remote")).args(["[127.0.0.10]", "a@b.test", "c@d.test"]),
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not as root"));
}

/// The domains' DNS: remote.test's best MX is down, the second (on
/// 127.0.0.11) must take the mail, the third (127.0.0.10) must not see
/// it; nomail.test has a null MX; cname.test's MX host is an alias of
/// the second's name.
const ZONE: &str = "\
remote IN MX 30 third.remote.test.
remote IN MX 10 down.remote.test.
remote IN MX 20 second.remote.test.
down.remote IN A 127.0.0.12
second.remote IN A 127.0.0.11
third.remote IN A 127.0.0.10
nomail IN MX 0 .
cname IN MX 10 alias.remote.test.
alias.remote IN CNAME second.remote.test.
";

#[test]
fn the_next_mx_takes_the_mail_when_the_best_is_down_and_a_null_mx_fails() {
    let nsd = postern_dns::testing::Nsd::start(ZONE);
    let third = sink(&[]);
    let sink = sink_at("127.0.0.11", third.port, &[]);
    let dns = ["--nameserver".to_string(), nsd.address.to_string()];
    let message = b"Subject: via MX\n\nhello\n";
    let lines = remote_to("remote.test", &dns, sink.port, &["a@remote.test"], message);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("a@remote.test\t250\t2.0.0 "),
        "{}",
        lines[0]
    );
    let dump = dump_ending(&sink.dump, &[&message[..], b"\n"].concat());
    assert!(dump.contains("X-Rcpt-Args: <a@remote.test>\n"), "{dump}");
    assert!(!third.dump.exists(), "the third MX got mail too");
    // An MX host named through a CNAME is followed to its address.
    let aliased = b"Subject: via a CNAME\n\nhello\n";
    let lines = remote_to("cname.test", &dns, sink.port, &["b@cname.test"], aliased);
    assert!(
        lines[0].starts_with("b@cname.test\t250\t2.0.0 "),
        "{}",
        lines[0]
    );
    dump_ending(&sink.dump, &[&aliased[..], b"\n"].concat());
    let lines = remote_to("nomail.test", &dns, sink.port, &["a@nomail.test"], b"x\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("a@nomail.test\t550\t5.1.10 "),
        "{}",
        lines[0]
    );
}
