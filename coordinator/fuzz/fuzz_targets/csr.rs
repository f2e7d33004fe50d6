//! Certificate signing requests from agents: any text is signed or refused,
//! never a panic, and a signed certificate always names the identity given.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use slipway_coordinator::pki::{Ca, Identity, Role, identity_from_der};

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("slipway-fuzz-ca-{}", std::process::id()));
        Ca::load_or_create(&dir).expect("fuzz CA")
    })
}

fuzz_target!(|text: &str| {
    let identity = Identity::new("i-fuzz", Role::Agent);
    if let Ok((pem, _)) = ca().sign_csr(text, &identity, Duration::from_secs(60)) {
        let der = pem_to_der(&pem);
        assert_eq!(identity_from_der(&der).expect("our own certificate parses"), identity);
    }
});

fn pem_to_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("our own PEM parses").to_vec()
}
