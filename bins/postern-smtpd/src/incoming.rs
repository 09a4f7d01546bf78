//! A message on its way into the queue: the queue writer of postern-inject
//! (docs/QUEUE.md), begun when the data begins, with Postern's `Received:`
//! line first (RFC 5321 §4.4), and committed — file and directory fsync'd —
//! before the 250 goes out.

use std::net::IpAddr;
use std::time::SystemTime;

use postern_queue_format::status::storage_full;
use postern_queue_format::{Envelope, QueueDir, QueueWriter, Recipient, dsn};
use postern_smtp::{Envelope as Transaction, Reply};

pub struct Incoming {
    writer: Result<QueueWriter, std::io::Error>,
    pub size: u64,
}

impl Incoming {
    pub fn begin(
        queue: &QueueDir,
        hostname: &str,
        peer: IpAddr,
        transaction: &Transaction,
        tls: Option<&str>,
    ) -> Incoming {
        let now = SystemTime::now();
        let arrival = postern_config::unix_seconds(now);
        let envelope = Envelope {
            arrival,
            sender: transaction.mail.address.to_lowercase(),
            recipients: transaction
                .recipients
                .iter()
                .map(|rcpt| {
                    let recipient = dsn::recipient(rcpt);
                    Recipient {
                        address: queue_address(&recipient.address, hostname),
                        ..recipient
                    }
                })
                .collect(),
            ret: dsn::ret(&transaction.mail),
            envid: transaction.mail.env_id.clone(),
            report: None,
        };
        let writer = queue.begin(&envelope);
        let mut incoming = Incoming { writer, size: 0 };
        if let Ok(writer) = &mut incoming.writer {
            let trace = received(hostname, peer, transaction, tls, writer.id().as_str(), now);
            if let Err(e) = writer.write(trace.as_bytes()) {
                incoming.writer = Err(e);
            }
        }
        incoming
    }

    pub fn write(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        if let Ok(writer) = &mut self.writer
            && let Err(e) = writer.write(data)
        {
            self.writer = Err(e);
        }
    }

    /// Makes the message durable; the queue id, or the reply for a queue
    /// that cannot take it (a full disk, ...).
    pub async fn commit(self, queue: QueueDir) -> Result<String, (Reply, String)> {
        let writer = self.writer.map_err(refusal)?;
        let committed = tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| refusal(std::io::Error::other(e)))?
            .map_err(refusal)?;
        queue.poke(&committed);
        Ok(committed.to_string())
    }
}

/// A recipient as the queue and postern-auth take it: `postmaster`
/// without a domain (RFC 5321 §4.5.1) is this host's; lower case.
pub fn queue_address(address: &str, hostname: &str) -> String {
    if address.contains('@') {
        address.to_lowercase()
    } else {
        format!("{}@{hostname}", address.to_lowercase())
    }
}

fn refusal(error: std::io::Error) -> (Reply, String) {
    let why = error.to_string();
    let reply = if storage_full(&error) {
        Reply::new(452, "4.3.1", "Error: insufficient system storage")
    } else {
        Reply::new(451, "4.3.0", "Error: queue file write error")
    };
    (reply, why)
}

/// The trace line: who sent it from where (over which TLS, as which
/// authenticated user), who took it with which protocol (RFC 3848's and
/// RFC 6531's names: ESMTPSA is ESMTP with TLS and AUTH), the queue id,
/// and for one recipient its address.
fn received(
    hostname: &str,
    peer: IpAddr,
    transaction: &Transaction,
    tls: Option<&str>,
    id: &str,
    now: SystemTime,
) -> String {
    let helo: String = transaction
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let peer = postern_config::relayers::canonical(peer);
    let utf8 = transaction.mail.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
    let mut protocol = match (utf8, transaction.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    }
    .to_string();
    if protocol != "SMTP" {
        if transaction.tls {
            protocol.push('S');
        }
        if transaction.authenticated.is_some() {
            protocol.push('A');
        }
    }
    let date = postern_log::dates::rfc5322(now);
    let mut line = format!("Received: from {helo} ([{peer}])");
    if let Some(tls) = tls.filter(|_| transaction.tls) {
        line.push_str(&format!("\n\t(using {tls})"));
    }
    if let Some(user) = &transaction.authenticated {
        let user: String = user.chars().filter(|c| c.is_ascii_graphic()).collect();
        line.push_str(&format!("\n\t(Authenticated sender: {user})"));
    }
    line.push_str(&format!(
        "\n\tby {hostname} (Postern) with {protocol} id {id}"
    ));
    if let [only] = transaction.recipients.as_slice() {
        line.push_str(&format!("\n\tfor <{}>", only.address));
    }
    line.push_str(&format!("; {date}\n"));
    line
}
