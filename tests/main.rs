//! The integration tests, one binary: each module is an area, all of them sharing `support`
//! (the temporary project, the in-process SMTP test server, the HTML oracle), compiled once.
//! Run one area with `cargo test --test main cli::`, one test by its path's tail.

#![allow(
    unreachable_pub,
    reason = "test helpers are shared between modules of this one crate"
)]

mod support;

mod audience;
mod browser;
mod cli;
mod compose;
mod crash;
mod deliverability;
mod doctor;
mod fault_matrix;
mod first_hour;
mod fuzz;
mod hardening_dryrun;
mod hardening_inputs;
mod hardening_mime;
mod hardening_retry;
mod inbox;
mod inbox_resume;
mod inbox_servers;
mod live_preview;
mod security;
mod send;
mod smtp_server_selftest;
mod smtp_sink;
mod web;
mod web_browser;
