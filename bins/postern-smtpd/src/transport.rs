//! A connection that may turn into TLS half way (STARTTLS), or start as
//! TLS (port 465): the session reads and writes it the same either way.

use std::pin::Pin;
use std::task::{Context, Poll};

use postern_tls::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub enum Transport<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while the handshake has the stream.
    Gone,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> {
    /// Starts TLS on a plain connection; on failure the connection is
    /// lost, as it must be after a failed handshake.
    pub async fn start_tls(&mut self, acceptor: &tokio_rustls::TlsAcceptor) -> std::io::Result<()> {
        let Transport::Plain(stream) = std::mem::replace(self, Transport::Gone) else {
            return Err(std::io::Error::other("TLS is already on"));
        };
        let tls = acceptor.accept(stream).await?;
        *self = Transport::Tls(Box::new(tls));
        Ok(())
    }

    /// The negotiated protocol and cipher suite, for the log and the
    /// `Received:` line.
    pub fn tls_description(&self) -> Option<String> {
        let Transport::Tls(stream) = self else {
            return None;
        };
        let (_, connection) = stream.get_ref();
        // TLSv1.3, as OpenSSL and Postfix's logs write it.
        let version = connection
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("TLS")
            .replace('_', ".");
        let cipher = connection
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        Some(format!("{version} with cipher {cipher}"))
    }
}

fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Transport::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Transport::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Transport::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Transport::Gone => Poll::Ready(Err(gone())),
        }
    }
}
