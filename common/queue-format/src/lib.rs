//! The queue directory as docs/QUEUE.md defines it: queue ids, the queue
//! file (envelope, then data), the writer every injector uses, and the
//! per-recipient records of the queue manager. No process logic lives
//! here: `postern-inject`, `postern-smtpd` and `postern-queue` share it.

pub mod dsn;
mod envelope;
mod id;
mod listing;
mod open;
mod records;
pub mod status;
mod writer;

pub use envelope::{Envelope, EnvelopeError, Notify, Recipient, Report, ReportKind, Ret};
pub use id::QueueId;
pub use listing::{list, stats};
pub use open::open_queued;
pub use records::{Event, Outcome, Records};
pub use status::{Remote, Status};
pub use writer::{QueueDir, QueueWriter, SUBDIRECTORIES, read_envelope_from};
