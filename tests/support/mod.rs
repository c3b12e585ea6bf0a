pub mod project;
pub mod smtp_server;
