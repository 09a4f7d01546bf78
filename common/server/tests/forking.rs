//! The forking listener for real: a process per connection, the limit per
//! IP, room again once a session has ended, and SIGTERM. In a test binary
//! of its own, because the listener forks and takes SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use postern_listen::{Listen, Pop3Port};
use postern_server::{Accepted, Access, Connections, Refusals, serve_forking};

const REFUSALS: Refusals = Refusals {
    denied: b"-ERR Access denied\r\n",
    crowded: b"-ERR Too many connections\r\n",
    access_setting: "[test] access",
};

fn first_line(address: std::net::SocketAddr) -> String {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn one_process_per_connection_within_the_limits_until_sigterm() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let listen = Listen {
        address,
        kind: Pop3Port::Pop3,
    };
    let listener_pid = std::process::id();
    let client = std::thread::spawn(move || {
        // The first session holds its connection for a second; a second
        // client from the same IP is over the limit of one.
        let holder = TcpStream::connect(address).unwrap();
        holder
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(holder);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let (pid, _) = line.trim_end().split_once(' ').unwrap();
        assert_ne!(pid, listener_pid.to_string(), "served in the listener");
        assert_eq!(first_line(address), "-ERR Too many connections\r\n");
        // Once that session has ended, the IP has room again.
        line.clear();
        assert_eq!(reader.read_line(&mut line).unwrap(), 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = first_line(address);
            if line.ends_with("+OK hello\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "no room again: {line}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: SIGTERM to this test's own process, whose handler only
        // sets the listener's stop flag.
        unsafe { libc::kill(listener_pid as i32, libc::SIGTERM) };
    });
    let code = serve_forking(
        vec![(listen, listener)],
        &Access::default(),
        Connections::new(10, 1),
        &REFUSALS,
        None,
        None,
        |mut accepted: Accepted<Pop3Port>| {
            let line = format!("{} +OK hello\r\n", std::process::id());
            let _ = accepted.stream.write_all(line.as_bytes());
            std::thread::sleep(Duration::from_secs(1));
            // SAFETY: a forked child of a threaded process leaves without
            // running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        },
    );
    client.join().unwrap();
    assert_eq!(code, 0);
}
