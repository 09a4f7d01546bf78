//! Asking postern-auth about a login, from the session process (still the
//! login user): one request, on a connection of its own.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use postern_auth_protocol::{Client, Reply, Request, Service};
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
    if request.encode().is_none() {
        // Longer than postern-auth takes: no password is that long.
        return Ok(Reply::Fail {
            status: "5.7.8 too long".into(),
        });
    }
    Client::new(socket, ANSWER_TIME).ask(&request)
}
