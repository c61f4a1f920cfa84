//! Black-box tests: the real server on port 0 with a temporary data folder,
//! driven over real HTTP and WebSocket connections.

#[path = "../../bench/src/availability.rs"]
mod availability;
mod card_fake;
mod care;
mod child;
mod compose;
mod cors;
mod helpers;
mod nats_harness;
#[path = "../../bench/src/smtp_sink.rs"]
mod smtp_sink;

mod access;
mod analytics;
mod analytics_billing;
mod analytics_live;
mod analytics_month;
mod analytics_notifications;
mod analytics_providers;
mod analytics_support;
mod audit;
mod auth;
mod bad_input;
mod billing;
mod boards;
mod calendar;
mod card_refunds;
mod cards;
mod claims;
mod demo;
mod durability;
mod integrity;
mod invites;
mod invoices;
mod lifecycle;
mod memory;
mod nats;
mod notifications;
mod openapi;
mod pages;
mod patient_delete;
mod patients;
mod payments;
mod process;
mod records;
mod rotation;
mod schedule;
mod tls;
mod websocket;
