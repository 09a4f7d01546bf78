//! Delivering to a destination: its hosts tried in turn (MX order, each
//! host's addresses IPv6 first) until one takes the message, and the
//! client core driven over each connection, with RFC 5321 §4.5.3.2's
//! timeouts and STARTTLS where offered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use postern_dns::Dns;
use postern_queue_format::Status;
use postern_queue_format::status::Class;
use postern_smtp_client::{
    Action, Config, DataEncoder, Message, RecipientResult, Reply, Session, Tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a connection may take to open.
const CONNECT_TIME: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2: at least five minutes for a reply, ten for the one
/// after the message, three for each block of the message to be taken.
const REPLY_TIME: Duration = Duration::from_secs(300);
const FINAL_TIME: Duration = Duration::from_secs(600);
const WRITE_TIME: Duration = Duration::from_secs(180);

pub struct Target {
    pub destination: String,
    pub port: u16,
    pub nameservers: Vec<SocketAddr>,
    pub helo: String,
    pub dns_timeout: Duration,
}

/// A result for each of `message`'s recipients.
pub async fn deliver(target: &Target, message: &Message, body: &[u8]) -> Vec<RecipientResult> {
    let every = |reply: Reply, remote: bool| -> Vec<RecipientResult> {
        message
            .recipients
            .iter()
            .map(|_| RecipientResult {
                reply: reply.clone(),
                remote,
            })
            .collect()
    };
    let hosts = match hosts(target).await {
        Ok(hosts) => hosts,
        Err(status) => return every(reply_of(&status), false),
    };
    // One TLS configuration for every host tried.
    let tls = match crate::opportunistic::client_config() {
        Ok(tls) => tls,
        Err(e) => return every(Reply::new(451, "4.7.5", format!("TLS: {e}")), false),
    };
    let mut last = Reply::new(
        451,
        "4.4.1",
        format!("no host of {} could be reached", target.destination),
    );
    let mut last_remote = false;
    for (name, addresses) in hosts {
        for ip in addresses {
            let address = SocketAddr::new(ip, target.port);
            let tcp = match timeout(CONNECT_TIME, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    last = Reply::new(451, "4.4.1", format!("connect to {name}[{ip}]: {e}"));
                    last_remote = false;
                    continue;
                }
                Err(_) => {
                    last = Reply::new(451, "4.4.1", format!("connect to {name}[{ip}]: timed out"));
                    last_remote = false;
                    continue;
                }
            };
            match session(tcp, &name, &target.helo, &tls, message, body).await {
                Outcome::Done(results) => return results,
                // The host would not talk (a refused greeting, a dropped
                // connection before the message): the next one may.
                Outcome::Refused(reply, remote) => {
                    last = reply;
                    last_remote = remote;
                }
            }
        }
    }
    every(last, last_remote)
}

/// The hosts to try and their addresses: `[ADDRESS]` alone, or the
/// domain's mail hosts.
async fn hosts(target: &Target) -> Result<Vec<(String, Vec<IpAddr>)>, Status> {
    let destination = &target.destination;
    if let Some(literal) = destination
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
    {
        let ip: IpAddr = literal.trim_start_matches("IPv6:").parse().map_err(|_| {
            Status::new("5.1.2", format!("{destination} is not an address literal"))
        })?;
        return Ok(vec![(literal.to_string(), vec![ip])]);
    }
    let dns = Dns::new(&target.nameservers, target.dns_timeout)
        .map_err(|e| Status::new("4.4.3", format!("no DNS resolver: {e}")))?;
    let mut found = Vec::new();
    for host in dns.mail_hosts(destination).await? {
        let addresses = dns.addresses(&host.name).await?;
        if !addresses.is_empty() {
            found.push((host.name, addresses));
        }
    }
    if found.is_empty() {
        return Err(Status::new(
            "4.4.4",
            format!("no mail host of {destination} has an address"),
        ));
    }
    Ok(found)
}

/// A status as an SMTP-like reply, for results no server gave.
fn reply_of(status: &Status) -> Reply {
    // The reply code each class has when nothing more is known.
    let code = match status.class() {
        Class::Success => 250,
        Class::Temporary => 451,
        Class::Permanent => 550,
    };
    Reply::new(code, &status.code.to_string(), status.text.clone())
}

enum Outcome {
    Done(Vec<RecipientResult>),
    /// The session ended before the transaction: the reply, and whether
    /// the server gave it.
    Refused(Reply, bool),
}

enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

impl Connection {
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Connection::Plain(tcp) => tcp.read(buffer).await,
            Connection::Tls(tls) => tls.read(buffer).await,
            Connection::Gone => Ok(0),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let write = async {
            match self {
                Connection::Plain(tcp) => tcp.write_all(bytes).await,
                Connection::Tls(tls) => {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                }
                Connection::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        timeout(WRITE_TIME, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// STARTTLS's handshake, opportunistic.
    async fn start_tls(
        self,
        config: &Arc<rustls::ClientConfig>,
        host: &str,
    ) -> std::io::Result<Connection> {
        let Connection::Plain(tcp) = self else {
            return Err(std::io::Error::other("TLS is already on"));
        };
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .or_else(|_| rustls::pki_types::ServerName::try_from("localhost".to_string()))
            .map_err(std::io::Error::other)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        let tls = timeout(REPLY_TIME, connector.connect(name, tcp))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
        Ok(Connection::Tls(Box::new(tls)))
    }
}

/// One connection: greeting to QUIT, one transaction.
async fn session(
    tcp: TcpStream,
    host: &str,
    helo: &str,
    tls: &Arc<rustls::ClientConfig>,
    message: &Message,
    body: &[u8],
) -> Outcome {
    let mut session = Session::new(Config {
        helo_name: helo.to_string(),
        tls: Tls::Opportunistic,
        login: None,
    });
    let mut connection = Connection::Plain(tcp);
    let mut results = None;
    let mut sent = false;
    let mut wait = REPLY_TIME;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        while let Some(action) = session.next_action() {
            match action {
                Action::Send(bytes) => {
                    if connection.write(&bytes).await.is_err() {
                        session.connection_lost();
                    }
                }
                Action::StartTls => {
                    let plain = std::mem::replace(&mut connection, Connection::Gone);
                    match plain.start_tls(tls, host).await {
                        Ok(tls) => {
                            connection = tls;
                            session.tls_ready();
                        }
                        Err(_) => session.connection_lost(),
                    }
                }
                Action::Ready if !sent => {
                    sent = true;
                    session.send(message.clone());
                }
                Action::Ready => session.quit(),
                Action::SendBody { .. } => {
                    let mut encoded = Vec::with_capacity(body.len() + body.len() / 16 + 8);
                    let mut encoder = DataEncoder::new();
                    encoder.feed(body, &mut encoded);
                    encoder.finish(&mut encoded);
                    if connection.write(&encoded).await.is_err() {
                        session.connection_lost();
                    } else {
                        session.body_sent();
                        wait = FINAL_TIME;
                    }
                }
                Action::Finished(done) => {
                    results = Some(done);
                    wait = REPLY_TIME;
                }
                Action::Closed(reply) => {
                    return match (results, reply) {
                        (Some(results), _) => Outcome::Done(results),
                        (None, Some(why)) => Outcome::Refused(why.reply, why.remote),
                        (None, None) => Outcome::Refused(
                            Reply::new(
                                451,
                                "4.4.2",
                                format!("{host} closed the session before the message"),
                            ),
                            false,
                        ),
                    };
                }
            }
        }
        match timeout(wait, connection.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => session.receive(&buffer[..n]),
            _ => session.connection_lost(),
        }
    }
}
