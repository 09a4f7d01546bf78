//! Asking postern-auth, for every program that does: one connection, kept
//! for the next questions and opened again once if postern-auth restarted
//! since the last one, each answer bounded in length and in time. The
//! blocking [`Client`] serves the POP3 sessions and `postern-admin`; with
//! the `tokio` feature, [`AsyncClient`] serves postern-smtpd.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Block, MAX_LINE, Reply, Request};

/// The request as its line, or why it cannot travel.
fn line_of(request: &Request) -> Result<String, String> {
    request
        .encode()
        .ok_or_else(|| "a request that cannot be sent".to_string())
}

/// One answer line as read (LF included), as a reply.
fn reply_of(answer: &[u8]) -> Result<Reply, String> {
    if answer.last() != Some(&b'\n') {
        return Err("postern-auth closed the connection".to_string());
    }
    Reply::parse(String::from_utf8_lossy(answer).trim_end())
}

pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    stream: Option<BufReader<UnixStream>>,
}

impl Client {
    /// A client of the socket at `socket`, whose answers may each take
    /// `timeout` (postern-auth waits out its throttle's delay first).
    pub fn new(socket: &Path, timeout: Duration) -> Client {
        Client {
            socket: socket.to_path_buf(),
            timeout,
            stream: None,
        }
    }

    /// postern-auth's answer to `request`, or why there is none.
    pub fn ask(&mut self, request: &Request) -> Result<Reply, String> {
        let line = line_of(request)?;
        let reused = self.stream.is_some();
        match self.exchange(&line) {
            Ok(reply) => Ok(reply),
            // Once more, on a fresh connection: postern-auth may have
            // restarted since the last question.
            Err(_) if reused => {
                self.stream = None;
                self.exchange(&line)
            }
            Err(e) => Err(e),
        }
    }

    /// `BLOCKED`: the throttle's blocks, read up to their `END` line.
    pub fn blocked(&mut self) -> Result<Vec<Block>, String> {
        let line = line_of(&Request::Blocked)?;
        self.send(&line)?;
        let mut blocks = Vec::new();
        loop {
            let answer = self.read_line()?;
            let text = String::from_utf8_lossy(&answer);
            let text = text.trim_end();
            if let Some(block) = Block::parse(text) {
                blocks.push(block);
            } else if text.starts_with("END ") {
                return Ok(blocks);
            } else {
                return Err(format!("postern-auth answered {text:?}"));
            }
        }
    }

    fn exchange(&mut self, line: &str) -> Result<Reply, String> {
        self.send(line)?;
        let answer = self.read_line()?;
        reply_of(&answer)
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = UnixStream::connect(&self.socket)
                .map_err(|e| format!("{}: {e}", self.socket.display()))?;
            let _ = stream.set_read_timeout(Some(self.timeout));
            self.stream = Some(BufReader::new(stream));
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| format!("postern-auth: {e}"))
    }

    fn read_line(&mut self) -> Result<Vec<u8>, String> {
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let mut answer = Vec::new();
        let read = stream
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut answer);
        match read {
            Ok(_) if answer.last() == Some(&b'\n') => Ok(answer),
            Ok(_) => {
                self.stream = None;
                Err("postern-auth closed the connection".to_string())
            }
            Err(e) => {
                self.stream = None;
                Err(format!("postern-auth: {e}"))
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncClient;

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;

    use super::{line_of, reply_of};
    use crate::{MAX_LINE, Reply, Request};

    /// [`super::Client`] for a tokio runtime.
    pub struct AsyncClient {
        socket: PathBuf,
        timeout: Duration,
        stream: Option<BufReader<UnixStream>>,
    }

    impl AsyncClient {
        pub fn new(socket: &Path, timeout: Duration) -> AsyncClient {
            AsyncClient {
                socket: socket.to_path_buf(),
                timeout,
                stream: None,
            }
        }

        /// postern-auth's answer to `request`, or why there is none.
        pub async fn ask(&mut self, request: &Request) -> Result<Reply, String> {
            let line = line_of(request)?;
            for attempt in 0..2 {
                match tokio::time::timeout(self.timeout, self.exchange(&line)).await {
                    Ok(Ok(reply)) => return Ok(reply),
                    // Once more, on a fresh connection: postern-auth may
                    // have restarted since the last question.
                    Ok(Err(_)) if attempt == 0 => self.stream = None,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        self.stream = None;
                        return Err("postern-auth did not answer in time".to_string());
                    }
                }
            }
            Err("postern-auth cannot be reached".to_string())
        }

        async fn exchange(&mut self, line: &str) -> Result<Reply, String> {
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
            (&mut *stream)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut answer)
                .await
                .map_err(|e| e.to_string())?;
            reply_of(&answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A postern-auth stand-in answering each line with `answer(line)`;
    /// it closes the first connection after one answer, as a restart would.
    fn server(dir: &Path, answer: fn(&str) -> String) -> PathBuf {
        let socket = dir.join("auth.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let mut stream = BufReader::new(stream.unwrap());
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let reply = answer(line.trim_end());
                    stream.get_mut().write_all(reply.as_bytes()).unwrap();
                    if n == 0 {
                        break;
                    }
                }
            }
        });
        socket
    }

    #[test]
    fn asks_again_on_a_fresh_connection_once_the_old_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let socket = server(dir.path(), |line| match line {
            "BLOCKED" => "BLOCK account YQ== 3 delayed 1796000000\nEND 1\n".into(),
            _ => "LOCAL\n".into(),
        });
        let mut client = Client::new(&socket, Duration::from_secs(5));
        let lookup = Request::Lookup {
            address: "a@example.test".into(),
        };
        assert_eq!(client.ask(&lookup), Ok(Reply::Local));
        // The first connection was closed: the client reconnects.
        assert_eq!(client.ask(&lookup), Ok(Reply::Local));
        assert_eq!(client.ask(&lookup), Ok(Reply::Local));
        let blocks = client.blocked().unwrap();
        assert_eq!((blocks.len(), blocks[0].key.as_str()), (1, "a"));
    }

    #[test]
    fn a_missing_service_or_a_cut_answer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = Client::new(&dir.path().join("none.sock"), Duration::from_secs(1));
        let lookup = Request::Lookup {
            address: "a@example.test".into(),
        };
        assert!(client.ask(&lookup).unwrap_err().contains("none.sock"));
        let socket = server(dir.path(), |_| "LOC".into());
        let mut client = Client::new(&socket, Duration::from_secs(1));
        assert_eq!(
            client.ask(&lookup),
            Err("postern-auth closed the connection".to_string())
        );
    }
}
