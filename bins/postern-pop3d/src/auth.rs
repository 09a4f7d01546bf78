//! Asking postern-auth about a login, from the session process (still the
//! login user): one request on a fresh connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use postern_auth_protocol::{MAX_LINE, Reply, Request, Service};
use postern_pop3::Credentials;

/// postern-auth waits out its throttle before it answers; more than this
/// means it is stuck.
const ANSWER_TIME: Duration = Duration::from_secs(60);

pub fn check(socket: &Path, ip: IpAddr, credentials: Credentials) -> Result<Reply, String> {
    let request = Request::Login {
        service: Service::Pop3,
        ip,
        user: credentials.user,
        proof: credentials.proof,
    };
    let Some(line) = request.encode() else {
        // Longer than postern-auth takes: no password is that long.
        return Ok(Reply::Fail {
            status: "5.7.8 too long".into(),
        });
    };
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let _ = stream.set_read_timeout(Some(ANSWER_TIME));
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("postern-auth: {e}"))?;
    let mut answer = Vec::new();
    BufReader::new(stream)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut answer)
        .map_err(|e| format!("postern-auth: {e}"))?;
    if answer.last() != Some(&b'\n') {
        return Err("postern-auth closed the connection".into());
    }
    Reply::parse(String::from_utf8_lossy(&answer).trim_end())
}
