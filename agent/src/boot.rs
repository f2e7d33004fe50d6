//! The instance's bootstrap data: user-data (coordinator address, CA, join token)
//! and its own metadata (instance id, private IP, image id).
//!
//! On EC2 these come from the instance metadata service with the IMDSv2 token
//! flow: two plain HTTP requests, so the agent needs no AWS SDK. The local cloud
//! passes them as flags and a file instead.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// EC2's instance metadata service.
pub const IMDS_ADDRESS: &str = "169.254.169.254:80";
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RESPONSE: u64 = 64 * 1024;

/// What IMDS knows about this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMetadata {
    pub instance_id: String,
    pub private_ip: String,
    pub image_id: String,
}

/// An IMDSv2 client: a session token first, then reads that present it.
#[derive(Debug, Clone)]
pub struct Imds {
    address: String,
}

impl Imds {
    pub fn new(address: &str) -> Self {
        Imds {
            address: address.to_string(),
        }
    }

    async fn request(&self, method: &str, path: &str, header: &str) -> anyhow::Result<String> {
        let exchange = async {
            let mut stream = TcpStream::connect(&self.address).await?;
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{header}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(IMDS_TIMEOUT, exchange)
            .await
            .with_context(|| {
                format!(
                    "instance metadata at {} did not answer in time",
                    self.address
                )
            })?
            .with_context(|| format!("instance metadata at {} is unreachable", self.address))?;
        let text =
            String::from_utf8(response).context("instance metadata answered with non-UTF-8")?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("instance metadata answered with no HTTP body")?;
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!("instance metadata {method} {path} answered {status}");
        }
        Ok(body.to_string())
    }

    async fn token(&self) -> anyhow::Result<String> {
        self.request(
            "PUT",
            "/latest/api/token",
            "X-aws-ec2-metadata-token-ttl-seconds: 300",
        )
        .await
    }

    pub async fn user_data(&self) -> anyhow::Result<String> {
        let token = self.token().await?;
        self.request(
            "GET",
            "/latest/user-data",
            &format!("X-aws-ec2-metadata-token: {token}"),
        )
        .await
    }

    pub async fn metadata(&self) -> anyhow::Result<InstanceMetadata> {
        let token = self.token().await?;
        let header = format!("X-aws-ec2-metadata-token: {token}");
        Ok(InstanceMetadata {
            instance_id: self
                .request("GET", "/latest/meta-data/instance-id", &header)
                .await?,
            private_ip: self
                .request("GET", "/latest/meta-data/local-ipv4", &header)
                .await?,
            image_id: self
                .request("GET", "/latest/meta-data/ami-id", &header)
                .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    /// A stand-in for IMDS that insists on the v2 token.
    async fn fake_imds() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let mut reader = tokio::io::BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                let body = if head.starts_with("PUT /latest/api/token") {
                    Some("tok-1")
                } else if !head.contains("X-aws-ec2-metadata-token: tok-1") {
                    None
                } else if head.starts_with("GET /latest/meta-data/instance-id") {
                    Some("i-0abc")
                } else if head.starts_with("GET /latest/meta-data/local-ipv4") {
                    Some("10.0.0.7")
                } else if head.starts_with("GET /latest/meta-data/ami-id") {
                    Some("ami-123")
                } else if head.starts_with("GET /latest/user-data") {
                    Some("coordinator = \"https://c\"")
                } else {
                    None
                };
                let response = match body {
                    Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()),
                    None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                reader
                    .get_mut()
                    .write_all(response.as_bytes())
                    .await
                    .unwrap();
            }
        });
        address
    }

    #[tokio::test]
    async fn metadata_and_user_data_come_through_the_v2_token_flow() {
        let imds = Imds::new(&fake_imds().await);
        let metadata = imds.metadata().await.unwrap();
        assert_eq!(
            metadata,
            InstanceMetadata {
                instance_id: "i-0abc".into(),
                private_ip: "10.0.0.7".into(),
                image_id: "ami-123".into()
            }
        );
        assert_eq!(
            imds.user_data().await.unwrap(),
            "coordinator = \"https://c\""
        );
    }

    #[tokio::test]
    async fn an_unreachable_imds_is_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Imds::new(&address)
            .metadata()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("instance metadata at"), "{err}");
    }
}
