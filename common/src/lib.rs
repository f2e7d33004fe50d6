//! What Slipway's binaries share besides the wire protocol (which is
//! `slipway-proto`'s alone):
//!
//! - `user_data`: what a launch hands the agent (EC2 user-data).
//! - `profile`: the CLI's profile file and certificate bundle; `private_file`:
//!   owner-only files for keys.
//! - `http_probe`: one HTTP health check, shared by the agent and the local cloud.
//! - `process`: whether another process has ended (`/proc`).
//! - `webhook`: POSTing JSON to a webhook (https, or http to loopback only).
//! - `logging`: `SLIPWAY_LOG` and `SLIPWAY_LOG_FORMAT` for the coordinator and
//!   the local cloud.

#![forbid(unsafe_code)]

pub mod http_probe;
pub mod logging;
pub mod private_file;
pub mod process;
pub mod profile;
pub mod user_data;
pub mod webhook;
