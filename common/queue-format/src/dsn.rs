//! DSN's SMTP parameters (RFC 3461) as the envelope keeps them: the one
//! conversion postern-smtpd and `sendmail -bs` share.

use smtp_proto::{MailFrom, RcptTo};

use crate::{Notify, Recipient, Ret};

/// MAIL's RET (RFC 3461 §4.3).
pub fn ret(mail: &MailFrom<String>) -> Option<Ret> {
    if mail.flags & smtp_proto::MAIL_RET_HDRS != 0 {
        Some(Ret::Headers)
    } else if mail.flags & smtp_proto::MAIL_RET_FULL != 0 {
        Some(Ret::Full)
    } else {
        None
    }
}

/// A RCPT with its NOTIFY and ORCPT (RFC 3461 §4.1, §4.2); the address as
/// given.
pub fn recipient(rcpt: &RcptTo<String>) -> Recipient {
    use smtp_proto::{
        RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    };
    let flags = rcpt.flags;
    let any = RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY;
    let notify = (flags & any != 0).then_some(Notify {
        success: flags & RCPT_NOTIFY_SUCCESS != 0,
        failure: flags & RCPT_NOTIFY_FAILURE != 0,
        delay: flags & RCPT_NOTIFY_DELAY != 0,
    });
    Recipient {
        address: rcpt.address.clone(),
        notify,
        orcpt: rcpt.orcpt.clone(),
    }
}
