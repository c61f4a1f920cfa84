//! Black-box tests: the real server on port 0 with a temporary data folder,
//! driven over real HTTP and WebSocket connections.

mod helpers;

mod access;
mod auth;
mod bad_input;
mod boards;
mod lifecycle;
mod nats;
mod process;
mod schedule;
mod websocket;
