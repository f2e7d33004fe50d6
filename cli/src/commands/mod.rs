//! One module per noun the CLI acts on; each builds its requests, calls the
//! coordinator through `Client` and prints through `render`.

pub mod agent;
pub mod audit;
pub mod ca;
pub mod cert;
pub mod dashboard;
pub mod deployment;
pub mod events;
pub mod infra;
pub mod logs;
pub mod promote;
pub mod release;
pub mod secret;
pub mod status;
