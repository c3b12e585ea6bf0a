//! `bulletin inbox`: reads the bounce mailbox and closes the loop — bounces, complaints and
//! mailed unsubscribes go back into the suppression file and the journal.

pub mod classify;
pub mod settings;
pub mod verp;
