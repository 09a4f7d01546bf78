//! A batch's lines as postern-lspawn hands them over: for each message an
//! `M` line (`+` when its queue file's descriptor came with the batch,
//! `-` when lspawn could not open it; where the message starts, its queue
//! id, arrival, sender and DSN requests), then an `R` line for each
//! recipient this destination gets. Fields are tab-separated, `-` is an
//! empty optional field; the values come from the queue's own envelopes,
//! which hold no control characters.
//!
//! ```text
//! M <+|-> <offset> <queue-id> <arrival> <sender> <ret> <envid>
//! R <index> <address> <notify> <orcpt>
//! ```

/// One message of the batch, and its recipients here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Whether the queue file's descriptor came with the batch (else
    /// lspawn could not open it).
    pub passed: bool,
    pub offset: u64,
    pub id: String,
    pub arrival: u64,
    pub sender: String,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub recipients: Vec<RecipientRequest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientRequest {
    /// The recipient's index in its queue file, which the answer names.
    pub index: usize,
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

fn optional(field: &str) -> Option<String> {
    (field != "-" && !field.is_empty()).then(|| field.to_string())
}

/// The batch's messages; an error names the first line that is wrong.
pub fn parse(text: &str) -> Result<Vec<Request>, String> {
    let mut requests: Vec<Request> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("request line {}: {what}", number + 1);
        let fields: Vec<&str> = line.split('\t').collect();
        match fields[..] {
            ["M", fd, offset, id, arrival, sender, ret, envid] => requests.push(Request {
                passed: match fd {
                    "+" => true,
                    "-" => false,
                    _ => return Err(bad("a bad descriptor mark")),
                },
                offset: offset.parse().map_err(|_| bad("a bad offset"))?,
                id: id.to_string(),
                arrival: arrival.parse().map_err(|_| bad("a bad arrival"))?,
                sender: sender.to_string(),
                ret: optional(ret),
                envid: optional(envid),
                recipients: Vec::new(),
            }),
            ["R", index, address, notify, orcpt] => {
                let message = requests
                    .last_mut()
                    .ok_or_else(|| bad("a recipient before its message"))?;
                message.recipients.push(RecipientRequest {
                    index: index.parse().map_err(|_| bad("a bad index"))?,
                    address: address.to_string(),
                    notify: optional(notify),
                    orcpt: optional(orcpt),
                });
            }
            _ => return Err(bad("not an M or R line")),
        }
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_their_recipients() {
        let text = "M\t+\t120\tabc\t1795000000\talice@a.test\tHDRS\t-\n\
                    R\t0\tbob@b.test\tSUCCESS,FAILURE\trfc822;bob@b.test\n\
                    R\t2\tcarol@b.test\t-\t-\n\
                    M\t-\t90\tdef\t1795000001\t\t-\tE1\n\
                    R\t1\tdan@b.test\t-\t-\n";
        let requests = parse(text).unwrap();
        assert_eq!(requests.len(), 2);
        assert!(requests[0].passed);
        assert_eq!(requests[0].ret.as_deref(), Some("HDRS"));
        assert_eq!(
            requests[0].recipients[0].notify.as_deref(),
            Some("SUCCESS,FAILURE")
        );
        assert_eq!(requests[0].recipients[1].index, 2);
        // A bounce's empty sender; a queue file lspawn could not open.
        assert_eq!(requests[1].sender, "");
        assert!(!requests[1].passed);
        assert_eq!(requests[1].envid.as_deref(), Some("E1"));
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            parse("R\t0\tx@y\t-\t-\n").unwrap_err(),
            "request line 1: a recipient before its message"
        );
        assert!(
            parse("M\t+\tx\tid\t1\ts\t-\t-\n")
                .unwrap_err()
                .contains("offset")
        );
        assert!(parse("junk\n").unwrap_err().contains("line 1"));
    }
}
