pub mod smtp_server;
pub mod project;
