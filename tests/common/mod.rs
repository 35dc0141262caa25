pub mod bin;
pub mod client;
pub mod http;
pub mod server;
