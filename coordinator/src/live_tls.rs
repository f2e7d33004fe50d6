//! A port's TLS settings, made again when the CA rotates: the next handshake
//! after `slipway ca rotate` or `finish` presents a certificate from the CA
//! that signs now, while connections already open keep theirs.

use std::sync::{Arc, Mutex};

use tokio_rustls::TlsAcceptor;
use tracing::warn;

use crate::pki::Ca;

type Make = dyn Fn(&Ca) -> Result<Arc<rustls::ServerConfig>, String> + Send + Sync;

pub struct LiveTls {
    /// None: settings the operator gave (`--http-cert`), never remade.
    ca: Option<(Arc<Ca>, Box<Make>)>,
    /// The CA generation the settings were made for, and the settings.
    held: Mutex<(u64, Arc<rustls::ServerConfig>)>,
}

impl std::fmt::Debug for LiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveTls")
    }
}

impl LiveTls {
    /// Settings made by `make` from `ca` now and after each rotation step.
    pub fn following(
        ca: Arc<Ca>,
        make: impl Fn(&Ca) -> Result<Arc<rustls::ServerConfig>, String> + Send + Sync + 'static,
    ) -> Result<LiveTls, String> {
        let generation = ca.generation();
        let config = make(&ca)?;
        Ok(LiveTls {
            ca: Some((ca, Box::new(make))),
            held: Mutex::new((generation, config)),
        })
    }

    /// Settings that never change.
    pub fn fixed(config: Arc<rustls::ServerConfig>) -> LiveTls {
        LiveTls {
            ca: None,
            held: Mutex::new((0, config)),
        }
    }

    /// What the next handshake uses.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((ca, make)) = &self.ca {
            let generation = ca.generation();
            if held.0 != generation {
                match make(ca) {
                    Ok(config) => *held = (generation, config),
                    // The previous settings still work for every client
                    // that trusts the previous CA; tried again next time.
                    Err(e) => warn!(error = %e, "cannot remake TLS after a CA rotation step"),
                }
            }
        }
        TlsAcceptor::from(held.1.clone())
    }
}
