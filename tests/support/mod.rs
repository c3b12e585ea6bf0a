pub mod html;
pub mod project;
pub mod smtp_server;
