//! How postern-lspawn hands remote batches to a postern-remote worker,
//! which may stay to take more for the same destination over its open
//! connection (the connection cache): a Unix socket pair, the worker's
//! standard input and output. A batch is a frame,
//!
//! ```text
//! BATCH <n>          (sent with the batch's descriptors, SCM_RIGHTS)
//! <n request lines>
//! ```
//!
//! and the worker answers each recipient with a line, then `END`. The
//! descriptors are the queue files lspawn opened, in the order of the
//! request lines that name them: the worker reads those messages and
//! nothing else of the queue.

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The most descriptors one batch carries (SCM_RIGHTS takes 253).
pub const MAX_FDS: usize = 200;
/// The longest request line a worker reads.
const MAX_LINE: usize = 64 * 1024;

/// Sends one batch: its header with `fds`, then its lines.
pub fn send_batch(socket: &UnixStream, lines: &[String], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many descriptors for one batch"));
    }
    let header = format!("BATCH {}\n", lines.len());
    let rights = [ControlMessage::ScmRights(fds)];
    let control: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(header.as_bytes())],
        control,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    let mut writer = socket;
    writer.write_all(&header.as_bytes()[sent..])?;
    let mut text = lines.join("\n");
    text.push('\n');
    writer.write_all(text.as_bytes())?;
    writer.flush()
}

/// A batch as the worker receives it.
#[derive(Debug)]
pub struct Batch {
    pub lines: Vec<String>,
    pub fds: Vec<OwnedFd>,
}

/// The worker's side: reads frames, and the descriptors that came with
/// them, from a socket it reads in no other way (a plain read would drop
/// the descriptors).
pub struct Receiver {
    socket: UnixStream,
    pending: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Receiver {
    pub fn new(socket: UnixStream) -> Receiver {
        Receiver {
            socket,
            pending: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// The next batch; `None` at the end of the input. Blocks.
    pub fn next_batch(&mut self) -> io::Result<Option<Batch>> {
        let Some(header) = self.line()? else {
            return Ok(None);
        };
        let count = header
            .strip_prefix("BATCH ")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| io::Error::other(format!("not a batch header: {header:?}")))?;
        let mut lines = Vec::with_capacity(count.min(10_000));
        for _ in 0..count {
            let line = self
                .line()?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            lines.push(line);
        }
        Ok(Some(Batch {
            lines,
            fds: std::mem::take(&mut self.fds),
        }))
    }

    fn line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..end]).into_owned()));
            }
            if self.pending.len() > MAX_LINE {
                return Err(io::Error::other("a request line is too long"));
            }
            if !self.receive()? {
                return match self.pending.is_empty() {
                    true => Ok(None),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
        }
    }

    /// Reads what is there, keeping any descriptors; false at the end.
    fn receive(&mut self) -> io::Result<bool> {
        let mut buffer = [0u8; 16 * 1024];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<()>(
            self.socket.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let read = message.bytes;
        for control in message.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = control {
                // SAFETY: the kernel made these descriptors for this
                // process just now; nothing else owns them.
                self.fds.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        self.pending.extend_from_slice(&buffer[..read]);
        Ok(read > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[test]
    fn batches_arrive_with_their_descriptors_in_order() {
        let (lspawn, worker) = UnixStream::pair().unwrap();
        let mut files = Vec::new();
        for text in ["first", "second"] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(text.as_bytes()).unwrap();
            file.rewind().unwrap();
            files.push(file);
        }
        let fds: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
        let lines = vec![
            "M\t+\t0".to_string(),
            "R\t0\ta@b".to_string(),
            "M\t+\t0".to_string(),
        ];
        send_batch(&lspawn, &lines, &fds).unwrap();
        send_batch(&lspawn, &["M\t-\t0".to_string()], &[]).unwrap();
        drop(lspawn);
        let mut receiver = Receiver::new(worker);
        let batch = receiver.next_batch().unwrap().unwrap();
        assert_eq!(batch.lines, lines);
        assert_eq!(batch.fds.len(), 2);
        let mut text = String::new();
        std::fs::File::from(batch.fds.into_iter().nth(1).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "second");
        let batch = receiver.next_batch().unwrap().unwrap();
        assert!(batch.fds.is_empty());
        assert!(receiver.next_batch().unwrap().is_none());
    }
}
