//! The relay rules of common/config, as SMTP replies.

use postern_smtp::Reply;

pub use postern_routing::relay::RelayRules;

/// `550 5.7.1` for an open-relay trick (common/config's `relay::trick`).
pub fn trick(address: &str) -> Option<Reply> {
    postern_routing::relay::trick(address).map(|what| {
        Reply::new(
            550,
            "5.7.1",
            format!("<{address}>: {what} is not accepted here"),
        )
    })
}

/// `550 5.7.1` for a relay the rules do not allow.
pub fn refusal(rules: &RelayRules, address: &str) -> Reply {
    Reply::new(550, "5.7.1", format!("<{address}>: {}", rules.refusal))
}
