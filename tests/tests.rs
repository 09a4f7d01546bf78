//! Integration tests: each starts the built programs (`make test` builds
//! them first) in a temporary directory and checks what lands on disk.

mod util;

mod admin;
mod batch;
mod bounces;
mod crash;
mod dane;
mod dkim;
mod docs;
mod dovecot_passwords;
mod fresh_host;
mod imap_dovecot;
mod imapd;
mod imapd_concurrency;
mod inject;
mod inject_smtp;
mod install;
mod local_delivery;
mod maps;
mod mta_sts;
mod next_hop;
mod outbound;
mod pop3d;
mod pop3d_activation;
mod pop3d_proxy;
mod privilege;
mod queue;
mod queue_modes;
mod relay;
mod reload;
mod remote;
mod sandbox;
mod smtp_auth;
mod smtpd;
mod srs;
mod suite;
mod system_users;
mod throttle;
mod uidlist;
