//! Black-box tests: the real server (in-process via `Application::build`, or
//! the real binary as a child process) against a real PostgreSQL cluster that
//! this test binary starts and throws away.

mod helpers;
mod nodes;
mod ws_client;

mod ai_health;
mod attachments;
mod browser;
mod calls;
mod chat;
mod cluster;
mod csat;
mod dashboard;
mod durability;
mod email;
mod faults;
mod foundation;
mod integrations;
mod receipts;
mod replay;
mod search;
mod settings;
mod staff;
mod stats;
mod workflow;
