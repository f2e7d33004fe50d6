//! A real SMTP server for email notifications (`tests/servers/smtp.py`,
//! aiosmtpd): STARTTLS with a certificate from a CA made here, then a login.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

use crate::{TempDir, python_tool};

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    /// The CA that signed the server's certificate, PEM: Slipway's `ca_file`.
    pub ca_file: PathBuf,
    maildir: PathBuf,
    _dir: TempDir,
}

impl SmtpServer {
    /// Accepts mail only after STARTTLS and a login as `user` with `password`.
    pub fn start(user: &str, password: &str) -> SmtpServer {
        let dir = TempDir::new("smtp");
        let maildir = dir.path().join("mail");
        std::fs::create_dir_all(&maildir).expect("maildir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Test mail CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("server names")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("PEM file");
            path
        };
        let ca_file = write("ca.pem", ca_cert.pem());
        let cert = write("server.pem", server.pem());
        let key = write("server.key", key.serialize_pem());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/smtp.py");
        let mut child = Command::new(python_tool("python3"))
            .arg(&script)
            .arg(&maildir)
            .args([&cert, &key])
            .args([user, password])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server (python3 with aiosmtpd: tests/run installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the SMTP server's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the SMTP server: {line:?}"));
        SmtpServer {
            child,
            port,
            ca_file,
            maildir,
            _dir: dir,
        }
    }

    /// Every message accepted, in order: from, to, login, tls, message.
    pub fn messages(&self) -> Vec<Value> {
        let mut numbered: Vec<(u64, Value)> = std::fs::read_dir(&self.maildir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let n = name.strip_suffix(".json")?.parse().ok()?;
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        Some((n, serde_json::from_str(&text).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        numbered.sort_by_key(|(n, _)| *n);
        numbered.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
