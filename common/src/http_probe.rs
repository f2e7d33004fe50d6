//! The project's HTTP health check: run by the agent against its own instance,
//! and by the local cloud's load balancer when an instance is registered.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One check: Ok for a 2xx or 3xx answer, else what went wrong, for operators.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: slipway\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut status_line = String::new();
        BufReader::new(stream)
            .read_line(&mut status_line)
            .await
            .map_err(|e| e.to_string())?;
        let code: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:?}", status_line.trim()))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("answered {code}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("GET {path}: {e}")),
        Err(_) => Err(format!(
            "GET {path}: no answer within {}ms",
            timeout.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn server(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_200_passes_and_a_500_fails_with_its_code() {
        let ok = server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(probe(ok, "/health", Duration::from_secs(1)).await, Ok(()));
        let bad = server("HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
        assert_eq!(
            probe(bad, "/health", Duration::from_secs(1)).await,
            Err("GET /health: answered 500".into())
        );
    }

    #[tokio::test]
    async fn garbage_and_silence_fail() {
        let garbage = server("SSH-2.0-OpenSSH\r\n").await;
        assert!(
            probe(garbage, "/", Duration::from_secs(1))
                .await
                .unwrap_err()
                .contains("not an HTTP answer")
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let err = probe(silent, "/", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("no answer within 200ms"), "{err}");
    }
}
