//! A delivery status report (RFC 3464, in an RFC 6522 multipart/report):
//! a part for people saying what happened and why, the
//! message/delivery-status part for programs, and the message or its
//! header. Pure: everything it needs comes in, the message goes out.

use std::fmt::Write;

use postern_queue_format::{Envelope, Outcome, Records, ReportKind as Kind, Ret, Status};

/// What the report is about (the queue's `ReportKind`), in words.
trait Wording {
    fn subject(self) -> &'static str;
    fn action(self) -> &'static str;
}

impl Wording for Kind {
    fn subject(self) -> &'static str {
        match self {
            Kind::Failure => "Undelivered Mail Returned to Sender",
            Kind::Delay => "Delayed Mail (still being retried)",
            Kind::Success => "Successful Mail Delivery Report",
            Kind::Postmaster => "Undelivered Delivery Status Report",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Kind::Failure | Kind::Postmaster => "failed",
            Kind::Delay => "delayed",
            Kind::Success => "delivered",
        }
    }
}

/// A returned message larger than this goes back as its header only.
pub const MAX_RETURNED: usize = 100 * 1024;

/// Everything a report is made from.
pub struct Input<'a> {
    pub kind: Kind,
    pub hostname: &'a str,
    /// The queue id of the message reported on, and of the report.
    pub queue_id: &'a str,
    pub report_id: &'a str,
    pub envelope: &'a Envelope,
    pub records: &'a Records,
    /// The recipients the report covers, by index.
    pub indices: &'a [usize],
    /// Those of them delivered to another host, which does not report
    /// further: `relayed` rather than `delivered` in a success report.
    pub relayed: &'a [usize],
    /// The message reported on, LF line ends.
    pub message: &'a [u8],
    /// Until when a delayed message is retried.
    pub retry_until: Option<u64>,
    pub now: u64,
    /// To whom the report goes (the sender, or postmaster).
    pub to: &'a str,
}

use postern_log::dates::rfc5322_secs as date;

/// The header of a message: up to and including the blank line.
fn header_of(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\n") {
        return &message[..1];
    }
    match message.windows(2).position(|w| w == b"\n\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// The report, LF line ends, ready for the queue.
pub fn build(input: &Input<'_>) -> Vec<u8> {
    let Input {
        kind,
        hostname,
        envelope,
        records,
        indices,
        ..
    } = *input;
    let full = kind == Kind::Failure
        && envelope.ret != Some(Ret::Headers)
        && input.message.len() <= MAX_RETURNED;
    let returned: &[u8] = if full {
        input.message
    } else {
        header_of(input.message)
    };
    let eight_bit = !returned.is_ascii();
    let mut boundary = format!("{}.{}/{hostname}", input.report_id, input.now);
    while returned
        .windows(boundary.len())
        .any(|w| w == boundary.as_bytes())
    {
        boundary.push_str("=_");
    }

    let mut out = String::new();
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\n\
         To: <{to}>\n\
         Subject: {subject}\n\
         Date: {date}\n\
         Message-ID: <{report_id}@{hostname}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"{boundary}\"\n",
        to = input.to,
        subject = kind.subject(),
        date = date(input.now),
        report_id = input.report_id,
    );
    if eight_bit {
        out.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    out.push_str("\nThis is a MIME-encapsulated message.\n\n");

    // For people.
    let _ = write!(
        out,
        "--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    );
    out.push_str(&explanation(input));

    // For programs.
    let _ = write!(
        out,
        "\n--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
    );
    let _ = writeln!(out, "Reporting-MTA: dns; {hostname}");
    let _ = writeln!(out, "X-Postern-Queue-ID: {}", input.queue_id);
    if let Some(envid) = &envelope.envid {
        let _ = writeln!(out, "Original-Envelope-Id: {envid}");
    }
    let _ = writeln!(out, "Arrival-Date: {}", date(envelope.arrival));
    for &index in indices {
        let Some(recipient) = envelope.recipients.get(index) else {
            continue;
        };
        let status = status_of(records, index);
        out.push('\n');
        let _ = writeln!(out, "Final-Recipient: rfc822; {}", recipient.address);
        if let Some(orcpt) = &recipient.orcpt {
            let _ = writeln!(out, "Original-Recipient: rfc822; {orcpt}");
        }
        let action = match kind {
            Kind::Success if input.relayed.contains(&index) => "relayed",
            _ => kind.action(),
        };
        let _ = writeln!(out, "Action: {action}");
        let _ = writeln!(out, "Status: {}", status.code);
        // RFC 3464 §2.3.5–6: the other host's own reply, when it gave one.
        if let (Some(remote), Some(reply)) = (&status.remote, status.smtp_reply()) {
            let _ = writeln!(out, "Remote-MTA: dns; {}", remote.mta);
            let _ = writeln!(out, "Diagnostic-Code: smtp; {}", one_line(&reply));
        } else if !status.text.is_empty() {
            let _ = writeln!(
                out,
                "Diagnostic-Code: X-Postern; {}",
                one_line(&status.text)
            );
        }
        if let Some(last) = records.last_attempt() {
            let _ = writeln!(out, "Last-Attempt-Date: {}", date(last));
        }
        if let (Kind::Delay, Some(until)) = (kind, input.retry_until) {
            let _ = writeln!(out, "Will-Retry-Until: {}", date(until));
        }
    }

    // The message, or its header.
    let (part_type, description) = if full {
        ("message/rfc822", "Undelivered Message")
    } else {
        ("text/rfc822-headers", "Message Headers")
    };
    let _ = write!(
        out,
        "\n--{boundary}\nContent-Description: {description}\nContent-Type: {part_type}\n"
    );
    if eight_bit {
        out.push_str("Content-Transfer-Encoding: 8bit\n");
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(returned);
    if !returned.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    bytes
}

/// The part for people.
fn explanation(input: &Input<'_>) -> String {
    let Input {
        kind,
        hostname,
        envelope,
        records,
        indices,
        ..
    } = *input;
    let mut text = format!("This is the Postern mail system at {hostname}.\n\n");
    text.push_str(match kind {
        Kind::Failure => {
            "Your message could not be delivered to the recipients below, and it\n\
             will not be tried again. What went wrong is given for each; the\n\
             message, or its header, is attached.\n"
        }
        Kind::Delay => {
            "Your message has not yet been delivered to the recipients below.\n\
             It stays in the queue and is tried again; you need do nothing, and\n\
             you will hear again only if it fails for good.\n"
        }
        Kind::Success => {
            "Your message was delivered to the recipients below, as you asked\n\
             to be told.\n"
        }
        Kind::Postmaster => {
            "A delivery status report from this host could not be delivered.\n\
             Its sender was told nothing; the report's header is attached.\n"
        }
    });
    if let (Kind::Delay, Some(until)) = (kind, input.retry_until) {
        let _ = writeln!(text, "It will be tried until {}.", date(until));
    }
    text.push('\n');
    for &index in indices {
        let Some(recipient) = envelope.recipients.get(index) else {
            continue;
        };
        let status = status_of(records, index);
        let said = status.said();
        let _ = writeln!(text, "<{}>: {}", recipient.address, one_line(&said));
    }
    text
}

/// A recipient's last status, with its code.
fn status_of(records: &Records, index: usize) -> Status {
    match records.outcomes.get(index).cloned().flatten() {
        Some(Outcome::Failed { status }) | Some(Outcome::Deferred { status }) => status,
        Some(Outcome::Done) => Status::delivered("delivered"),
        None => Status::new("4.0.0", "not yet tried"),
    }
}

fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_queue_format::{Notify, Recipient};

    fn envelope() -> Envelope {
        Envelope {
            arrival: 1_795_000_000,
            sender: "alice@example.org".into(),
            recipients: vec![
                Recipient::new("bob@example.test"),
                Recipient {
                    address: "carol@example.test".into(),
                    notify: Notify::parse("failure"),
                    orcpt: Some("carol@example.org".into()),
                },
            ],
            envid: Some("E-1".into()),
            ..Envelope::default()
        }
    }

    fn input<'a>(
        kind: Kind,
        envelope: &'a Envelope,
        records: &'a Records,
        message: &'a [u8],
    ) -> Input<'a> {
        Input {
            kind,
            hostname: "mx.example.test",
            queue_id: "6b0000000000000000000a",
            report_id: "6b0000000000000000000b",
            envelope,
            records,
            indices: &[0, 1],
            relayed: &[],
            message,
            retry_until: Some(1_795_432_000),
            now: 1_795_000_100,
            to: "alice@example.org",
        }
    }

    #[test]
    fn a_failure_report_has_its_three_parts() {
        let envelope = envelope();
        let records = Records::parse(
            "round 1795000050\nfail 0 5.1.1 user unknown\nfail 1 4.2.2 mailbox full (gave up)\n",
            2,
        );
        let message = b"Subject: hi\nFrom: alice@example.org\n\nbody\n";
        let report =
            String::from_utf8(build(&input(Kind::Failure, &envelope, &records, message))).unwrap();
        assert!(report.contains("\nAuto-Submitted: auto-replied\n"));
        assert!(report.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(report.contains("\nOriginal-Envelope-Id: E-1\n"));
        assert!(report.contains(
            "\nFinal-Recipient: rfc822; bob@example.test\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: X-Postern; user unknown\n"
        ));
        assert!(report.contains(
            "\nFinal-Recipient: rfc822; carol@example.test\nOriginal-Recipient: rfc822; carol@example.org\nAction: failed\nStatus: 4.2.2\n"
        ));
        assert!(report.contains(
            "Content-Type: message/rfc822\n\nSubject: hi\nFrom: alice@example.org\n\nbody\n"
        ));
        assert!(report.ends_with("--\n"));
    }

    #[test]
    fn another_hosts_reply_is_quoted_as_it_gave_it() {
        let envelope = envelope();
        let records = Records::parse(
            "round 1795000050\nfail 0 5.1.1 <bob@example.test>: user unknown\tmx.example.test 550\n",
            2,
        );
        let input = Input {
            indices: &[0],
            ..input(Kind::Failure, &envelope, &records, b"Subject: hi\n\nx\n")
        };
        let report = String::from_utf8(build(&input)).unwrap();
        assert!(report.contains(
            "\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.example.test\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: user unknown\n"
        ), "{report}");
        assert!(report.contains(
            "<bob@example.test>: mx.example.test said: 550 5.1.1 <bob@example.test>: user unknown\n"
        ));
    }

    #[test]
    fn a_success_at_another_host_that_takes_no_dsn_is_relayed() {
        let envelope = envelope();
        let records = Records::parse("done 0\ndone 1\n", 2);
        let input = Input {
            relayed: &[1],
            ..input(Kind::Success, &envelope, &records, b"Subject: x\n\nx\n")
        };
        let report = String::from_utf8(build(&input)).unwrap();
        assert!(
            report.contains("Final-Recipient: rfc822; bob@example.test\nAction: delivered\n"),
            "{report}"
        );
        assert!(report.contains("Final-Recipient: rfc822; carol@example.test\nOriginal-Recipient: rfc822; carol@example.org\nAction: relayed\n"), "{report}");
    }

    #[test]
    fn headers_only_when_asked_or_too_big_and_for_delays() {
        let mut envelope = envelope();
        envelope.ret = Some(Ret::Headers);
        let records = Records::parse("defer 0 4.2.2 full\ndefer 1 4.2.2 full\n", 2);
        let message = b"Subject: hi\n\nsecret body\n";
        for kind in [Kind::Failure, Kind::Delay] {
            let report =
                String::from_utf8(build(&input(kind, &envelope, &records, message))).unwrap();
            assert!(report.contains("Content-Type: text/rfc822-headers\n\nSubject: hi\n\n"));
            assert!(!report.contains("secret body"));
        }
        let delay =
            String::from_utf8(build(&input(Kind::Delay, &envelope, &records, message))).unwrap();
        assert!(delay.contains("\nAction: delayed\nStatus: 4.2.2\n"));
        assert!(delay.contains("\nWill-Retry-Until: "));
        assert!(delay.contains("Subject: Delayed Mail (still being retried)\n"));
        let big = [b"Subject: big\n\n".as_slice(), &vec![b'x'; MAX_RETURNED]].concat();
        envelope.ret = None;
        let report =
            String::from_utf8(build(&input(Kind::Failure, &envelope, &records, &big))).unwrap();
        assert!(report.contains("text/rfc822-headers"));
    }

    #[test]
    fn the_boundary_never_occurs_in_the_message() {
        let envelope = envelope();
        let records = Records::parse("fail 0 5.1.1 x\n", 2);
        let message = b"Subject: x\n\n--6b0000000000000000000b.1795000100/mx.example.test\n";
        let report =
            String::from_utf8(build(&input(Kind::Failure, &envelope, &records, message))).unwrap();
        assert!(
            report.contains("boundary=\"6b0000000000000000000b.1795000100/mx.example.test=_\"")
        );
    }

    #[test]
    fn statuses_without_a_code() {
        let records = Records::parse(
            "fail 0 5.1.1 user unknown\ndefer 1 no answer\nfail 2 5.x.1 odd\n",
            4,
        );
        assert_eq!(status_of(&records, 0), Status::new("5.1.1", "user unknown"));
        assert_eq!(status_of(&records, 1), Status::new("4.0.0", "no answer"));
        assert_eq!(status_of(&records, 2).code.to_string(), "5.0.0");
        assert_eq!(
            status_of(&records, 3),
            Status::new("4.0.0", "not yet tried")
        );
    }
}
