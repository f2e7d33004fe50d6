//! The local cloud: the embedded default, so the whole system runs on one machine
//! with no AWS account.
//!
//! It plays AWS's part in a process of its own (`slipway-local-cloud`, started
//! by the dev coordinator),
//! so a coordinator crash or restart leaves instances and traffic alone, as on AWS.
//! The coordinator reaches it over a Unix socket in the data dir (owner-only, so
//! no control port is open to the network), through the same traits as AWS.
//!
//! - an instance is a `slipway-agent` process from its image, on its own loopback
//!   address (127.x.y.z), given what EC2 user-data would carry; an image
//!   without an agent boots none, and its user-data waits for whoever plays it;
//! - an image is an immutable, content-addressed directory;
//! - a load balancer is a TCP proxy that forwards only to registered instances and
//!   lets open connections finish on deregister;
//! - a DNS record is a public port forwarding to the load balancer it points at.
//!
//! This library is what the coordinator links: `client` (the domain's cloud
//! traits over the socket) and `protocol` (what client and server say to each
//! other). The `slipway-local-cloud` binary is the other side: its `server`,
//! `proxy` and `image` modules. It depends on the domain and
//! `slipway-common` only; dependencies point down: `server` → `proxy`, `image`,
//! `protocol`; `client` → `protocol`.

#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;

pub use client::LocalCloud;

/// The socket file inside the local cloud's directory.
pub const SOCKET: &str = "cloud.sock";
/// Where an image keeps its agent; an image without one boots no agent.
pub const AGENT: &str = "bin/slipway-agent";
/// Each instance's directory, `INSTANCES/<instance id>`, inside the local cloud's.
pub const INSTANCES: &str = "instances";
/// The instance's user-data, inside its directory (owner-only: it holds the join token).
pub const USER_DATA: &str = "user-data";
