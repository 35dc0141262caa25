pub mod bin;
pub mod client;
pub mod frames;
pub mod http;
pub mod server;
