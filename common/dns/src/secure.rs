//! Answers whose authenticity a validating resolver vouches for, as DANE
//! needs them (RFC 7672 §2.1): the query goes, over TCP, to the one
//! resolver the admin names as validating (`[remote] dnssec_resolver`),
//! and the AD bit of its answer says whether it validated. As in Postfix,
//! the AD bit of any other server is not trusted: the path to the named
//! resolver must be one the admin trusts (loopback, typically).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use postern_queue_format::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A TLSA record (RFC 6698): usage, selector, matching type, data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// An answer, and whether the resolver validated it.
pub struct Validated {
    pub authentic: bool,
    pub code: ResponseCode,
    pub records: Vec<RData>,
}

pub struct SecureDns {
    server: SocketAddr,
    timeout: Duration,
}

impl SecureDns {
    pub fn new(server: SocketAddr, timeout: Duration) -> SecureDns {
        SecureDns { server, timeout }
    }

    /// One query, with DNSSEC asked for (DO) and the AD bit set, over TCP
    /// (TLSA answers can be larger than a UDP datagram).
    pub async fn query(&self, name: &str, kind: RecordType) -> Result<Validated, Status> {
        let fail =
            |why: String| Status::new("4.4.3", format!("DNSSEC resolver {}: {why}", self.server));
        let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| Status::new("5.1.2", format!("{name}: {e}")))?;
        let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.metadata.authentic_data = true;
        message.add_query(Query::query(fqdn, kind));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        edns.set_max_payload(4096);
        message.set_edns(edns);
        let bytes = message.to_vec().map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let mut tcp = TcpStream::connect(self.server).await?;
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            tcp.write_all(&framed).await?;
            let mut length = [0u8; 2];
            tcp.read_exact(&mut length).await?;
            let mut answer = vec![0u8; u16::from_be_bytes(length) as usize];
            tcp.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = timeout(self.timeout, exchange)
            .await
            .map_err(|_| fail("no answer in time".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let answer = Message::from_vec(&answer).map_err(|e| fail(e.to_string()))?;
        if answer.metadata.id != id {
            return Err(fail("an answer to another query".into()));
        }
        Ok(Validated {
            authentic: answer.metadata.authentic_data,
            code: answer.metadata.response_code,
            records: answer
                .answers
                .iter()
                .filter(|r| r.record_type() == kind)
                .map(|r| r.data.clone())
                .collect(),
        })
    }

    /// Whether `domain`'s MX answer (records, or none) validated: DANE
    /// applies to its MX hosts only then.
    pub async fn mx_is_secure(&self, domain: &str) -> Result<bool, Status> {
        let answer = self.query(domain, RecordType::MX).await?;
        match answer.code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer.authentic),
            code => Err(Status::new(
                "4.4.3",
                format!("DNSSEC resolver: MX of {domain}: {code}"),
            )),
        }
    }

    /// The validated TLSA records of `host`'s SMTP `port`: `None` when
    /// there are none or the answer is not validated (DANE does not
    /// apply), an error when the lookup failed (the host cannot be used
    /// safely: RFC 7672 §2.2.1).
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<Option<Vec<Tlsa>>, Status> {
        let name = format!("_{port}._tcp.{host}");
        let answer = self.query(&name, RecordType::TLSA).await?;
        match answer.code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => {
                return Err(Status::new(
                    "4.7.5",
                    format!("DANE: the TLSA lookup of {name} failed ({code})"),
                ));
            }
        }
        if !answer.authentic {
            return Ok(None);
        }
        let records: Vec<Tlsa> = answer
            .records
            .into_iter()
            .filter_map(|data| match data {
                RData::TLSA(tlsa) => Some(Tlsa {
                    usage: tlsa.cert_usage.into(),
                    selector: tlsa.selector.into(),
                    matching: tlsa.matching.into(),
                    data: tlsa.cert_data,
                }),
                _ => None,
            })
            .collect();
        Ok((!records.is_empty()).then_some(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Nsd, Unbound};

    #[tokio::test]
    async fn validated_answers_carry_the_ad_bit() {
        let (nsd, anchor) = Nsd::start_signed(
            "dane IN MX 10 mx.dane.test.\n\
             mx.dane IN A 127.0.0.1\n\
             _25._tcp.mx.dane IN TLSA 3 1 1 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n",
        );
        let unbound = Unbound::start(nsd.address, &anchor);
        let secure = SecureDns::new(unbound.address, Duration::from_secs(5));
        assert!(secure.mx_is_secure("dane.test").await.unwrap());
        let records = secure.tlsa("mx.dane.test", 25).await.unwrap().unwrap();
        assert_eq!(records[0].usage, 3);
        assert_eq!(records[0].selector, 1);
        assert_eq!(records[0].data.len(), 32);
        // No TLSA record: none, and secure.
        assert_eq!(secure.tlsa("mx.dane.test", 587).await.unwrap(), None);
        // The same zone from nsd itself: no AD bit, so no DANE.
        let direct = SecureDns::new(nsd.address, Duration::from_secs(5));
        assert!(!direct.mx_is_secure("dane.test").await.unwrap());
        assert_eq!(direct.tlsa("mx.dane.test", 25).await.unwrap(), None);
    }
}
