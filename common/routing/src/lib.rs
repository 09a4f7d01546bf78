//! Routing: where mail goes and who may send it there, kept apart from
//! the configuration it reads (postern-config). Address resolution
//! through aliases, mailboxes, system users, `:include:` lists and
//! catch-alls (`resolve`, shared by postern-local, postern-auth and
//! `postern-admin explain`); `~/.forward` files (`forward`); the relay
//! policy of postern-smtpd (`relay`); and the queue manager's routing of
//! each recipient to local or remote delivery (`route`).

pub mod forward;
pub mod relay;
mod resolve;
mod route;
pub mod srs;

pub use resolve::{
    Destination, REMOTE_DELIVERY, Resolution, ResolveError, Resolver, Special, Step,
};
pub use route::{Route, Router, remote_deferral};
