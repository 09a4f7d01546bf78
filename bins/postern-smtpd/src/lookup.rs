//! The client of postern-auth: one connection per SMTP session, opened at
//! the first RCPT or AUTH and kept for the next questions.

use std::path::PathBuf;
use std::time::Duration;

use postern_auth_protocol::{MAX_LINE, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long an answer may take before the RCPT gets a temporary refusal.
const ANSWER_TIME: Duration = Duration::from_secs(30);

pub struct Lookups {
    socket: PathBuf,
    stream: Option<BufReader<UnixStream>>,
}

impl Lookups {
    pub fn new(socket: PathBuf) -> Lookups {
        Lookups {
            socket,
            stream: None,
        }
    }

    /// postern-auth's answer for `address`, or why there is none.
    pub async fn lookup(&mut self, address: &str) -> Result<Reply, String> {
        self.ask_for(&Request::Lookup {
            address: address.to_string(),
        })
        .await
    }

    /// postern-auth's answer to `request`, or why there is none.
    pub async fn ask_for(&mut self, request: &Request) -> Result<Reply, String> {
        let line = request
            .encode()
            .ok_or_else(|| "a request that cannot be sent".to_string())?;
        // One retry on a fresh connection: postern-auth may have restarted
        // since the last question.
        for attempt in 0..2 {
            match tokio::time::timeout(ANSWER_TIME, self.ask(&line)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) if attempt == 0 => {
                    self.stream = None;
                    tracing::debug!("postern-auth: {e}; reconnecting");
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    self.stream = None;
                    return Err("postern-auth did not answer in time".to_string());
                }
            }
        }
        Err("postern-auth cannot be reached".to_string())
    }

    async fn ask(&mut self, line: &str) -> Result<Reply, String> {
        if self.stream.is_none() {
            let stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|e| format!("{}: {e}", self.socket.display()))?;
            self.stream = Some(BufReader::new(stream));
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let n = (&mut *stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 || answer.last() != Some(&b'\n') {
            return Err("postern-auth closed the connection".to_string());
        }
        Reply::parse(String::from_utf8_lossy(&answer).trim_end())
    }
}
