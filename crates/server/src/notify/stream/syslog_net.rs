//! The syslog stream's transports: a UDP datagram per message (best effort: nothing says it
//! arrived), or one kept TCP or TLS connection with RFC 6587 octet counting (`LEN SP MSG`,
//! which RFC 5425 uses for TLS too). A message counts as delivered once written; the alert id
//! is in each, so a receiver can drop a repeat after a reconnect.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio_rustls::rustls;

use crate::config::WEBHOOK_SEND_TIMEOUT as TIMEOUT;

/// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;
use crate::notify::Outcome;

/// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Udp,
    Tcp,
    Tls,
}

impl Target {
    pub fn parse(address: &str) -> Result<Self, String> {
        let url = url::Url::parse(address)
            .map_err(|e| format!("{e}: use udp://host:514, tcp://host:601 or tls://host:6514"))?;
        let (scheme, default) = match url.scheme() {
            "udp" => (Scheme::Udp, 514),
            "tcp" => (Scheme::Tcp, 601),
            "tls" => (Scheme::Tls, 6514),
            _ => return Err("use udp://host:514, tcp://host:601 or tls://host:6514".into()),
        };
        let host = url.host_str().ok_or("the address has no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            scheme,
            host,
            port: url.port().unwrap_or(default),
        })
    }
}

trait Conn: AsyncWrite + Unpin + Send {}
impl<T: AsyncWrite + Unpin + Send> Conn for T {}

/// A connection, and its TCP half (to see whether the receiver closed it).
type Kept = (Box<dyn Conn>, Arc<TcpStream>);

/// One connection, kept between sends (`None` until the first, and after a failure).
pub struct Transport {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    conn: Mutex<Option<Kept>>,
}

/// The TLS client: the CA file's certificates, or the public web roots.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("streams.syslog.ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("streams.syslog.ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("streams.syslog.ca_file: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // Both crypto providers are linked (the AWS SDK brings aws-lc): name one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Transport {
    pub fn new(target: Target, ca_file: Option<&Path>) -> Result<Self, String> {
        let tls = match target.scheme {
            Scheme::Tls => Some(tokio_rustls::TlsConnector::from(Arc::new(tls_config(
                ca_file,
            )?))),
            _ => None,
        };
        Ok(Self {
            target,
            tls,
            conn: Mutex::new(None),
        })
    }

    /// Writes one message; a failure drops the connection (the next send makes a new one).
    /// Connecting, the TLS handshake and the write share one deadline, the webhooks' send
    /// timeout, so a send never outlives its lane's claim.
    pub async fn send(&self, message: &str) -> Outcome {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        if self.target.scheme == Scheme::Udp {
            // No datagram carries more than this (IPv4's limit); retrying one that big would
            // hold every later record of the lane behind it until its retries run out.
            if message.len() > MAX_DATAGRAM {
                return Outcome::Permanent(format!(
                    "syslog over UDP: the message is {} bytes, more than a datagram holds; use tcp:// or tls://",
                    message.len()
                ));
            }
            return match tokio::time::timeout_at(deadline, self.datagram(message)).await {
                Ok(Ok(())) => Outcome::Delivered,
                Ok(Err(e)) => Outcome::Retry(format!("syslog over UDP: {e}")),
                Err(_) => Outcome::Retry("syslog over UDP: timed out".into()),
            };
        }
        let framed = format!("{} {message}", message.len());
        let mut conn = self.conn.lock().await;
        // A connection the receiver closed is stale; a write to it could vanish without an
        // error, so make a new one first.
        if let Some((_, tcp)) = conn.as_ref() {
            if !still_open(tcp) {
                *conn = None;
            }
        }
        if conn.is_none() {
            match tokio::time::timeout_at(deadline, self.connect()).await {
                Ok(Ok(c)) => *conn = Some(c),
                Ok(Err(e)) => return Outcome::Retry(e),
                Err(_) => return Outcome::Retry("syslog: connecting timed out".into()),
            }
        }
        let Some((writer, _)) = conn.as_mut() else {
            return Outcome::Retry("syslog: no connection".into());
        };
        let write = async {
            writer.write_all(framed.as_bytes()).await?;
            writer.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(e)) => {
                *conn = None;
                Outcome::Retry(format!("syslog: write failed: {e}"))
            }
            Err(_) => {
                *conn = None;
                Outcome::Retry("syslog: write timed out".into())
            }
        }
    }

    async fn datagram(&self, message: &str) -> std::io::Result<()> {
        let addr = tokio::net::lookup_host((self.target.host.as_str(), self.target.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("the host has no address"))?;
        let local: std::net::SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.send_to(message.as_bytes(), addr).await?;
        Ok(())
    }

    /// A new TCP (and TLS) connection; the TCP half is kept to look at its state.
    async fn connect(&self) -> Result<Kept, String> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|e| format!("syslog: could not connect to {}: {e}", self.target.host))?;
        let _ = tcp.set_nodelay(true);
        let tcp = Arc::new(tcp);
        let writer = SharedTcp(tcp.clone());
        let Some(tls) = &self.tls else {
            return Ok((Box::new(writer), tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
            .map_err(|e| format!("syslog: {e}"))?;
        let stream = tls
            .connect(name, writer)
            .await
            .map_err(|e| format!("syslog: TLS with {} failed: {e}", self.target.host))?;
        Ok((Box::new(stream), tcp))
    }

    /// For `doctor`: resolves and connects (and, for TLS, completes the handshake).
    pub async fn check(&self) -> Result<String, String> {
        let t = &self.target;
        if t.scheme == Scheme::Udp {
            let addr = tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| format!("{} does not resolve: {e}", t.host))?
                .next()
                .ok_or("the host has no address")?;
            return Ok(format!(
                "{} resolves to {addr} (UDP: nothing says a message arrives)",
                t.host
            ));
        }
        match tokio::time::timeout(TIMEOUT, self.connect()).await {
            Ok(Ok((_, tcp))) => Ok(format!(
                "connected to {}:{} ({})",
                t.host,
                t.port,
                tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default()
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer from {}:{}", t.host, t.port)),
        }
    }
}

/// Whether `tcp` is not at its end: a receiver that closed shows as readable with 0 bytes.
/// (Bytes waiting are not an end: a TLS 1.3 server sends session tickets.) The peek is a
/// non-blocking syscall of its own: tokio's readiness may not have seen the close yet.
fn still_open(tcp: &TcpStream) -> bool {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(tcp).peek(&mut buf) {
        Ok(n) => n > 0,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// A TCP stream shared with the staleness check, written through `&TcpStream`.
struct SharedTcp(Arc<TcpStream>);

impl tokio::io::AsyncRead for SharedTcp {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            match self.0.poll_read_ready(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            match self.0.poll_write_ready(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
            match self.0.try_write(buf) {
                Ok(n) => return std::task::Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let t = Target::parse("tls://logs.example.com").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Tls, 6514));
        let t = Target::parse("udp://[::1]:5514").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Udp, "::1", 5514)
        );
        assert!(Target::parse("http://x:1").is_err());
        assert!(Target::parse("tcp://").is_err());
    }

    /// Reads one `LEN SP MSG` frame.
    async fn frame(conn: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut len = Vec::new();
        loop {
            let b = conn.read_u8().await.unwrap();
            if b == b' ' {
                break;
            }
            len.push(b);
        }
        let n: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut msg = vec![0; n];
        conn.read_exact(&mut msg).await.unwrap();
        String::from_utf8(msg).unwrap()
    }

    #[tokio::test]
    async fn a_receiver_that_closed_the_connection_gets_a_new_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Transport::new(
            Target::parse(&format!("tcp://127.0.0.1:{port}")).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(t.send("one").await, Outcome::Delivered);
        let (mut first, _) = listener.accept().await.unwrap();
        assert_eq!(frame(&mut first).await, "one");
        // The receiver restarts: its end of the kept connection closes.
        drop(first);
        assert_eq!(t.send("two é").await, Outcome::Delivered);
        let (mut second, _) = listener.accept().await.unwrap();
        assert_eq!(frame(&mut second).await, "two é");
    }

    #[tokio::test]
    async fn a_message_no_datagram_holds_is_a_permanent_failure_not_a_retry() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let t = Transport::new(
            Target::parse(&format!("udp://127.0.0.1:{port}")).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(t.send("fits").await, Outcome::Delivered);
        let big = "x".repeat(MAX_DATAGRAM + 1);
        assert!(
            matches!(t.send(&big).await, Outcome::Permanent(ref e) if e.contains("tcp://")),
            "too big for UDP"
        );
    }
}
