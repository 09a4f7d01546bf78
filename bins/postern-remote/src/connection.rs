//! Delivering a batch of messages to one destination: its hosts tried in
//! turn (MX order, each host's addresses IPv6 first), and on each
//! connection the client core driven through as many transactions as the
//! batch holds (at most `per_transaction` recipients each, up to
//! `per_connection` messages a connection), with RFC 5321 §4.5.3.2's
//! timeouts and STARTTLS where offered. What a host would not take for
//! want of a working connection goes on to the next host; what a server
//! answered, it answered for good.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_config::{NextHop, TlsLevel};
use postern_dns::Dns;
use postern_dns::secure::SecureDns;
use postern_queue_format::Status;
use postern_queue_format::status::Class;
use postern_smtp_client::{
    Action, Config, DataEncoder, Message, RecipientResult, Reply, Session, Tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::info;

use crate::job::Job;
use crate::policy::Policy;

/// How long the other side may take, from `[remote]`: RFC 5321 §4.5.3.2
/// asks for at least five minutes for a reply (and for each block of the
/// message to be taken) and ten for the one after the message.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub reply: Duration,
    pub data: Duration,
}

impl Timeouts {
    pub fn of(remote: &postern_config::RemoteSettings) -> Timeouts {
        let secs = |n: u64| Duration::from_secs(n.max(1));
        Timeouts {
            connect: secs(remote.connect_timeout),
            reply: secs(remote.reply_timeout),
            data: secs(remote.data_timeout),
        }
    }
}

/// RFC 5321 §5.1 asks a client to try at least two hosts; this bounds
/// what one attempt can cost when a domain lists many (postern-dns
/// bounds each host's addresses).
const MAX_HOSTS: usize = 5;

pub struct Target {
    /// As the queue named it: a domain, or a next hop.
    pub destination: String,
    pub hop: NextHop,
    /// The port when the next hop names none.
    pub port: u16,
    pub policy: Policy,
    pub nameservers: Vec<SocketAddr>,
    pub helo: String,
    pub dns_timeout: Duration,
    pub timeouts: Timeouts,
    pub per_transaction: usize,
    pub per_connection: usize,
    /// Keep the last connection open for the next batch.
    pub keep: bool,
    /// DKIM keys by sender domain.
    pub signer: Option<std::cell::RefCell<crate::dkim::Signer>>,
    /// Where MTA-STS policies come from, when they are honoured.
    pub mta_sts: Option<MtaSts>,
    /// The validating resolver DANE trusts, when one is named.
    pub dnssec_resolver: Option<SocketAddr>,
    /// What DANE found so far, for the worker's later batches.
    pub dane: std::cell::RefCell<crate::dane::Found>,
}

/// `[remote]`'s MTA-STS settings, and the policy of the destination once
/// looked up by this worker.
pub struct MtaSts {
    pub port: u16,
    pub state_dir: std::path::PathBuf,
    pub ca_file: std::path::PathBuf,
    pub found: std::cell::RefCell<Option<Option<crate::mta_sts::Policy>>>,
}

/// A recipient's result: the reply, which host gave it
/// (`name[address]:port`, or `none`), and how long the connection took
/// to set up and the transaction to run.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub result: RecipientResult,
    /// The server took DSN's parameters (RFC 3461): it reports on the
    /// delivery itself, so this host does not.
    pub dsn: bool,
    pub relay: String,
    pub setup: Duration,
    pub transfer: Duration,
}

/// One transaction to make: a job's recipients (by position), at most
/// `per_transaction` of them.
#[derive(Clone, Debug)]
struct Transaction {
    job: usize,
    recipients: Vec<usize>,
    /// Connections it went out on and came back from unanswered.
    returns: usize,
}

/// A transaction no server answered for is tried on this many
/// connections at most; then its last reason is its result.
const MAX_RETURNS: usize = 3;

/// The results of every job's recipients, in order. The connection in
/// `cache`, if any, is used first, and the last one is left there when
/// `target.keep` asks for it.
pub async fn deliver(
    target: &Target,
    jobs: &mut [Job],
    cache: &mut Option<Box<Idle>>,
) -> Vec<Vec<Delivered>> {
    let mut results: Vec<Vec<Option<Delivered>>> = jobs
        .iter()
        .map(|job| vec![None; job.recipients()])
        .collect();
    let mut todo: VecDeque<Transaction> = VecDeque::new();
    for (index, job) in jobs.iter().enumerate() {
        let all: Vec<usize> = (0..job.recipients()).collect();
        for chunk in all.chunks(target.per_transaction.max(1)) {
            todo.push_back(Transaction {
                job: index,
                recipients: chunk.to_vec(),
                returns: 0,
            });
        }
    }
    let mut last = Reply::new(
        451,
        "4.4.1",
        format!("no host of {} could be reached", target.destination),
    );
    let mut last_remote = false;
    if let Some(idle) = cache.take() {
        let (host, relay) = (idle.host.clone(), idle.relay.clone());
        let mut run = Run::new(
            target,
            &host,
            &relay,
            Instant::now(),
            jobs,
            &mut todo,
            &mut results,
        );
        let ended = run
            .session(
                Start::Cached(idle),
                &target.helo,
                &target.policy,
                Tls::Never,
            )
            .await;
        // A cached connection that broke leaves its work to fresh ones.
        if let Ended::Idle(idle) = ended {
            *cache = Some(idle);
        }
    }
    let port = target.hop.port.unwrap_or(target.port);
    if todo.is_empty() {
        return finish(results, last, last_remote);
    }
    let (policy, sts) = match effective_policy(target).await {
        Ok(found) => found,
        Err(status) => return finish(results, reply_of(&status), false),
    };
    match hosts(target).await {
        Err(status) => last = reply_of(&status),
        Ok(mut hosts) => {
            if let Some(sts) = &sts {
                hosts.retain(|(name, _)| sts.allows(name));
                if hosts.is_empty() {
                    let why = format!(
                        "{}: no MX host of {} is one its policy names",
                        policy.source.as_deref().unwrap_or("MTA-STS"),
                        target.hop.host
                    );
                    last = Reply::new(451, "4.7.5", why);
                }
            }
            // A resolver that cannot say whether the MX answer validated
            // defers the mail: it may be bogus (RFC 7672 §2.2.1).
            let dane = match secure_destination(target).await {
                Ok(dane) => dane,
                Err(status) => return finish(results, reply_of(&status), false),
            };
            'hosts: for (name, addresses) in hosts {
                // DANE, where the host has validated TLSA records, holds
                // for it whatever else would (RFC 8461 §2).
                let policy = match &dane {
                    Some(secure) => {
                        let found = crate::dane::known_host_policy(
                            &target.dane,
                            secure,
                            &target.policy,
                            &name,
                            port,
                        );
                        match found.await {
                            Ok(crate::dane::HostPolicy::Dane(dane)) => dane,
                            Ok(crate::dane::HostPolicy::None) => policy.clone(),
                            Err(status) => {
                                last = reply_of(&status);
                                last_remote = false;
                                continue;
                            }
                        }
                    }
                    None => policy.clone(),
                };
                for ip in addresses {
                    let address = SocketAddr::new(ip, port);
                    let relay = format!("{name}[{ip}]:{port}");
                    let mut tls = policy.core_tls();
                    // A host that takes the mail may be asked again, on a
                    // new connection, once one has carried its share.
                    while !todo.is_empty() {
                        let started = Instant::now();
                        let tcp =
                            match timeout(target.timeouts.connect, TcpStream::connect(address))
                                .await
                            {
                                Ok(Ok(tcp)) => tcp,
                                Ok(Err(e)) => {
                                    last = Reply::new(
                                        451,
                                        "4.4.1",
                                        format!("connect to {relay}: {e}"),
                                    );
                                    last_remote = false;
                                    break;
                                }
                                Err(_) => {
                                    last = Reply::new(
                                        451,
                                        "4.4.1",
                                        format!("connect to {relay}: timed out"),
                                    );
                                    last_remote = false;
                                    break;
                                }
                            };
                        let mut run = Run::new(
                            target,
                            &name,
                            &relay,
                            started,
                            jobs,
                            &mut todo,
                            &mut results,
                        );
                        let ended = run
                            .session(Start::Fresh(tcp), &target.helo, &policy, tls)
                            .await;
                        match ended {
                            Ended::Idle(idle) => {
                                *cache = Some(idle);
                                break 'hosts;
                            }
                            Ended::Done if todo.is_empty() => break 'hosts,
                            Ended::Done => {}
                            // RFC 7435: opportunistic TLS that fails goes
                            // on in cleartext, on a new connection.
                            Ended::TlsFailed(reply)
                                if policy.level == TlsLevel::May && tls != Tls::Never =>
                            {
                                info!(
                                    "{relay}: {}; trying again without TLS",
                                    reply.lines.join(" ")
                                );
                                tls = Tls::Never;
                            }
                            Ended::TlsFailed(reply) => {
                                last = annotated(reply, &policy);
                                last_remote = false;
                                break;
                            }
                            // The host would not talk, or the connection
                            // broke: the next may.
                            Ended::Refused(reply, remote) => {
                                last = match remote {
                                    true => reply,
                                    false => annotated(reply, &policy),
                                };
                                last_remote = remote;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    finish(results, last, last_remote)
}

/// Each recipient's result; those no host was reached for get `last`.
fn finish(
    results: Vec<Vec<Option<Delivered>>>,
    last: Reply,
    last_remote: bool,
) -> Vec<Vec<Delivered>> {
    let unreached = Delivered {
        dsn: false,
        result: RecipientResult {
            reply: last,
            remote: last_remote,
        },
        relay: "none".to_string(),
        setup: Duration::ZERO,
        transfer: Duration::ZERO,
    };
    results
        .into_iter()
        .map(|job| {
            job.into_iter()
                .map(|r| r.unwrap_or_else(|| unreached.clone()))
                .collect()
        })
        .collect()
}

/// The policy a batch's connections follow: the destination's, or, when
/// no tls_policy line names it and the domain publishes an MTA-STS policy
/// in `enforce` mode, that policy's (TLS verified for each MX host), with
/// the MTA-STS policy whose MX names the hosts must match.
async fn effective_policy(
    target: &Target,
) -> Result<(Policy, Option<crate::mta_sts::Policy>), Status> {
    let applies = !target.policy.explicit && !target.hop.literal && target.hop.port.is_none();
    let Some(sts) = target.mta_sts.as_ref().filter(|_| applies) else {
        return Ok((target.policy.clone(), None));
    };
    let known = sts.found.borrow().clone();
    let found = match known {
        Some(found) => found,
        None => {
            let dns = Dns::new(&target.nameservers, target.dns_timeout)
                .map_err(|e| Status::new("4.4.3", format!("no DNS resolver: {e}")))?;
            let tls = crate::policy::verified(&sts.ca_file)?;
            let fetcher = crate::mta_sts::Fetcher {
                dns: &dns,
                tls,
                port: sts.port,
                state_dir: &sts.state_dir,
                now: postern_config::unix_now(),
            };
            let found = fetcher.policy(&target.hop.host).await;
            *sts.found.borrow_mut() = Some(found.clone());
            found
        }
    };
    match found {
        Some(policy) if policy.mode == crate::mta_sts::Mode::Enforce => {
            let source = format!("MTA-STS policy of {} (enforce)", target.hop.host);
            Ok((
                target.policy.enforced_by(source, &sts.ca_file)?,
                Some(policy),
            ))
        }
        Some(policy) if policy.mode == crate::mta_sts::Mode::Testing => {
            info!(
                "MTA-STS policy of {} is in testing mode: delivered as without it",
                target.hop.host
            );
            Ok((target.policy.clone(), None))
        }
        _ => Ok((target.policy.clone(), None)),
    }
}

/// The validating resolver to ask for TLSA records, when DANE can apply
/// to this destination: one is named, no tls_policy line decides, and the
/// MX records that named the hosts validated (a `[host]` next hop was
/// named by the admin, which is as good). An error when the resolver
/// gave no answer.
async fn secure_destination(target: &Target) -> Result<Option<SecureDns>, Status> {
    let Some(resolver) = target.dnssec_resolver.filter(|_| !target.policy.explicit) else {
        return Ok(None);
    };
    let secure = SecureDns::new(resolver, target.dns_timeout);
    if target.hop.literal {
        return Ok(Some(secure));
    }
    let known = target.dane.borrow().mx_secure;
    let mx_secure = match known {
        Some(known) => known,
        // Only an answer is kept: a resolver that failed is asked again
        // at the next batch.
        None => {
            let answer = secure.mx_is_secure(&target.hop.host).await?;
            target.dane.borrow_mut().mx_secure = Some(answer);
            answer
        }
    };
    Ok(mx_secure.then_some(secure))
}

/// A failure's reply naming the policy that demanded what failed.
fn annotated(mut reply: Reply, policy: &Policy) -> Reply {
    if let Some(source) = &policy.source
        && let Some(first) = reply.lines.first_mut()
    {
        *first = format!("{source}: {first}");
    }
    reply
}

/// The hosts to try and their addresses: a `[host]` next hop alone (an
/// address, or a name's addresses), or the mail hosts of the domain.
async fn hosts(target: &Target) -> Result<Vec<(String, Vec<IpAddr>)>, Status> {
    let hop = &target.hop;
    let dns = Dns::new(&target.nameservers, target.dns_timeout)
        .map_err(|e| Status::new("4.4.3", format!("no DNS resolver: {e}")))?;
    let mut found = Vec::new();
    for host in dns
        .next_hop_hosts(&hop.host, hop.literal)
        .await?
        .into_iter()
        .take(MAX_HOSTS)
    {
        let addresses = host.addresses?;
        if !addresses.is_empty() {
            found.push((host.name, addresses));
        }
    }
    if found.is_empty() {
        let why = match hop.literal {
            true => format!("{} has no address", hop.host),
            false => format!("no mail host of {} has an address", hop.host),
        };
        return Err(Status::new("4.4.4", why));
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

    async fn write(&mut self, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
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
        timeout(limit, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// STARTTLS's handshake. The certificate is checked for `host`'s
    /// name when `verify`; otherwise the configuration checks nothing.
    async fn start_tls(
        self,
        config: &Arc<rustls::ClientConfig>,
        host: &str,
        verify: bool,
        limit: Duration,
    ) -> std::io::Result<Connection> {
        let Connection::Plain(tcp) = self else {
            return Err(std::io::Error::other("TLS is already on"));
        };
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .or_else(|e| match verify {
                true => Err(e),
                false => rustls::pki_types::ServerName::try_from("localhost".to_string()),
            })
            .map_err(std::io::Error::other)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        let tls = timeout(limit, connector.connect(name, tcp))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
        Ok(Connection::Tls(Box::new(tls)))
    }

    /// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, for the log.
    fn tls_description(&self) -> Option<String> {
        let Connection::Tls(tls) = self else {
            return None;
        };
        let (_, state) = tls.get_ref();
        let version = state.protocol_version()?;
        let suite = state.negotiated_cipher_suite()?;
        let version = version
            .as_str()
            .unwrap_or("TLS")
            .replace("TLSv1_", "TLSv1.");
        Some(format!("{version} with cipher {:?}", suite.suite()))
    }
}

/// How a session starts.
enum Start {
    Fresh(TcpStream),
    Cached(Box<Idle>),
}

/// A connection kept open after its batch, ready for the next one to the
/// same destination (the connection cache).
pub struct Idle {
    session: Session,
    connection: Connection,
    host: String,
    relay: String,
    carried: usize,
}

impl Idle {
    /// QUIT, politely and briefly.
    pub async fn close(mut self) {
        self.session.quit();
        let mut buffer = [0u8; 4096];
        loop {
            while let Some(action) = self.session.next_action() {
                match action {
                    Action::Send(bytes)
                        if self.connection.write(&bytes, CLOSE_TIME).await.is_err() =>
                    {
                        return;
                    }
                    Action::Closed(_) => return,
                    _ => {}
                }
            }
            match timeout(CLOSE_TIME, self.connection.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => self.session.receive(&buffer[..n]),
                _ => return,
            }
        }
    }
}

/// How long a QUIT's answer is waited for.
const CLOSE_TIME: Duration = Duration::from_secs(10);

/// How a session ended.
enum Ended {
    /// Well: the work done, or this connection's share of it.
    Done,
    /// The work done, the connection kept.
    Idle(Box<Idle>),
    /// Before it could take the rest, and whether the server said why.
    Refused(Reply, bool),
    /// The TLS handshake failed.
    TlsFailed(Reply),
}

/// One connection's work: the transactions it takes from `todo`, and
/// where their results go.
struct Run<'a> {
    host: &'a str,
    relay: &'a str,
    started: Instant,
    setup: Option<Duration>,
    jobs: &'a mut [Job],
    todo: &'a mut VecDeque<Transaction>,
    results: &'a mut Vec<Vec<Option<Delivered>>>,
    /// Transactions no server answered for, for the next connection.
    returned: Vec<Transaction>,
    /// Messages this connection has carried.
    carried: usize,
    limit: usize,
    /// Whether a connection with nothing left to do is kept for the next
    /// batch rather than closed.
    keep: bool,
    signer: Option<&'a std::cell::RefCell<crate::dkim::Signer>>,
    timeouts: Timeouts,
}

impl<'a> Run<'a> {
    fn new(
        target: &'a Target,
        host: &'a str,
        relay: &'a str,
        started: Instant,
        jobs: &'a mut [Job],
        todo: &'a mut VecDeque<Transaction>,
        results: &'a mut Vec<Vec<Option<Delivered>>>,
    ) -> Run<'a> {
        Run {
            host,
            relay,
            started,
            setup: None,
            jobs,
            todo,
            results,
            returned: Vec::new(),
            carried: 0,
            limit: target.per_connection.max(1),
            keep: target.keep,
            signer: target.signer.as_ref(),
            timeouts: target.timeouts,
        }
    }

    /// `converse`, then what no server answered for goes back in front
    /// of the work left, for the next connection.
    async fn session(&mut self, start: Start, helo: &str, policy: &Policy, tls: Tls) -> Ended {
        let ended = self.converse(start, helo, policy, tls).await;
        for transaction in std::mem::take(&mut self.returned).into_iter().rev() {
            self.todo.push_front(transaction);
        }
        ended
    }

    /// Greeting (or a cached connection's next transaction) to QUIT, or
    /// to an idle connection kept for the next batch: how it ended.
    async fn converse(&mut self, start: Start, helo: &str, policy: &Policy, tls: Tls) -> Ended {
        let (mut session, mut connection, mut ready) = match start {
            Start::Fresh(tcp) => {
                let session = Session::new(Config {
                    helo_name: helo.to_string(),
                    tls,
                    login: policy.login.clone(),
                });
                (session, Connection::Plain(tcp), false)
            }
            // A cached connection is where it was left: Ready.
            Start::Cached(idle) => {
                self.carried = idle.carried;
                self.setup = Some(Duration::ZERO);
                (idle.session, idle.connection, true)
            }
        };
        let verify = policy.level == TlsLevel::Verify;
        let mut tls_failure = false;
        let mut current: Option<(Transaction, Instant, Arc<Vec<u8>>)> = None;
        let mut loaded: Option<(usize, Arc<Vec<u8>>)> = None;
        let mut last_job = None;
        let mut wait = self.timeouts.reply;
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if std::mem::take(&mut ready) {
                self.setup.get_or_insert_with(|| self.started.elapsed());
                match self.next_transaction(&mut loaded, &mut last_job) {
                    Some((transaction, message, body)) => {
                        current = Some((transaction, Instant::now(), body));
                        session.send(message);
                    }
                    None if self.keep && self.todo.is_empty() && self.carried < self.limit => {
                        return Ended::Idle(Box::new(Idle {
                            session,
                            connection,
                            host: self.host.to_string(),
                            relay: self.relay.to_string(),
                            carried: self.carried,
                        }));
                    }
                    None => session.quit(),
                }
            }
            while let Some(action) = session.next_action() {
                match action {
                    Action::Send(bytes) => {
                        if connection.write(&bytes, self.timeouts.reply).await.is_err() {
                            session.connection_lost();
                        }
                    }
                    Action::StartTls => {
                        let plain = std::mem::replace(&mut connection, Connection::Gone);
                        match plain
                            .start_tls(&policy.tls, self.host, verify, self.timeouts.reply)
                            .await
                        {
                            Ok(tls) => {
                                connection = tls;
                                if let Some(tls) = connection.tls_description() {
                                    let trust = if verify { "Verified" } else { "Untrusted" };
                                    info!(
                                        "{trust} TLS connection established to {}: {tls}",
                                        self.relay
                                    );
                                }
                                session.tls_ready();
                            }
                            Err(e) => {
                                tls_failure = true;
                                session.tls_failed(&e.to_string());
                            }
                        }
                    }
                    Action::Ready => {
                        ready = true;
                        break;
                    }
                    Action::SendBody { downgrade, chunk } => {
                        let Some((_, _, body)) = &current else {
                            session.connection_lost();
                            continue;
                        };
                        // RFC 6152 §3: 7-bit for a server without 8BITMIME
                        // (the core asks only when the message allows it).
                        let seven_bit = downgrade
                            .then(|| postern_smtp_client::downgrade::to_seven_bit(body))
                            .flatten();
                        let body = seven_bit.as_deref().unwrap_or(body);
                        // RFC 3030: one BDAT chunk where CHUNKING is offered.
                        let encoded = if chunk {
                            postern_smtp_client::bdat_chunk(body)
                        } else {
                            let mut encoded = Vec::with_capacity(body.len() + body.len() / 16 + 8);
                            let mut encoder = DataEncoder::new();
                            encoder.feed(body, &mut encoded);
                            encoder.finish(&mut encoded);
                            encoded
                        };
                        if connection
                            .write(&encoded, self.timeouts.reply)
                            .await
                            .is_err()
                        {
                            session.connection_lost();
                        } else {
                            session.body_sent();
                            wait = self.timeouts.data;
                        }
                    }
                    Action::Finished(done) => {
                        wait = self.timeouts.reply;
                        if let Some((transaction, began, _)) = current.take() {
                            self.record(transaction, began, done, session.extensions().dsn);
                        }
                    }
                    Action::Closed(None) => return Ended::Done,
                    Action::Closed(Some(why)) if tls_failure => return Ended::TlsFailed(why.reply),
                    Action::Closed(Some(why)) => return Ended::Refused(why.reply, why.remote),
                }
            }
            if ready {
                continue;
            }
            match timeout(wait, connection.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => session.receive(&buffer[..n]),
                _ => session.connection_lost(),
            }
        }
    }

    /// The next transaction for this connection, its message and body;
    /// `None` when none is left or the connection has carried its share.
    /// A message whose queue file cannot be read is answered here.
    fn next_transaction(
        &mut self,
        loaded: &mut Option<(usize, Arc<Vec<u8>>)>,
        last_job: &mut Option<usize>,
    ) -> Option<(Transaction, Message, Arc<Vec<u8>>)> {
        loop {
            let transaction = self.todo.front()?.clone();
            let fresh = *last_job != Some(transaction.job);
            if fresh && self.carried >= self.limit {
                return None;
            }
            self.todo.pop_front();
            let body = match loaded {
                Some((job, body)) if *job == transaction.job => Arc::clone(body),
                _ => match self.jobs[transaction.job].body() {
                    Ok(body) => {
                        // Signed once, when first read: every transaction
                        // of it carries the same signatures.
                        let body = match self.signer {
                            Some(signer) => {
                                let mut signed = signer.borrow_mut().sign(&body);
                                signed.extend_from_slice(&body);
                                signed
                            }
                            None => body,
                        };
                        let body = Arc::new(body);
                        *loaded = Some((transaction.job, Arc::clone(&body)));
                        body
                    }
                    Err(status) => {
                        let reply = reply_of(&status);
                        for &index in &transaction.recipients {
                            self.results[transaction.job][index] = Some(Delivered {
                                dsn: false,
                                result: RecipientResult {
                                    reply: reply.clone(),
                                    remote: false,
                                },
                                relay: "none".to_string(),
                                setup: Duration::ZERO,
                                transfer: Duration::ZERO,
                            });
                        }
                        continue;
                    }
                },
            };
            if fresh {
                self.carried += 1;
                *last_job = Some(transaction.job);
            }
            let message = self.jobs[transaction.job].message(&transaction.recipients, &body);
            return Some((transaction, message, body));
        }
    }

    /// A transaction's results. One that no server answered for (the
    /// connection broke before a reply) goes back for the next host.
    fn record(
        &mut self,
        mut transaction: Transaction,
        began: Instant,
        done: Vec<RecipientResult>,
        dsn: bool,
    ) {
        let unanswered = done
            .iter()
            .all(|r| !r.remote && Class::of_reply(r.reply.code) == Some(Class::Temporary));
        if unanswered && transaction.returns + 1 < MAX_RETURNS {
            transaction.returns += 1;
            self.returned.push(transaction);
            return;
        }
        let transfer = began.elapsed();
        for (&index, result) in transaction.recipients.iter().zip(done) {
            self.results[transaction.job][index] = Some(Delivered {
                result,
                dsn,
                relay: self.relay.to_string(),
                setup: self.setup.unwrap_or_default(),
                transfer,
            });
        }
    }
}
