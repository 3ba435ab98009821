//! Serving one listener (the web UI and API, or the sensor) within bounds a hostile client
//! cannot outlast: a header deadline that also closes idle keep-alive connections, a deadline
//! for the rest of the request, and a cap on open connections.
//!
//! `axum::serve` has none of these knobs, so connections are served with hyper's own builder.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use crate::config::ListenersConfig;

/// Raises this process's open-files limit to the hard limit the system allows, so that both
/// listeners' connection caps fit in it (a descriptor per connection, plus the database, files
/// and outgoing sends). Where it still cannot fit, says so once at start: past the limit `accept`
/// fails and new clients wait, which is what the cap would have done anyway.
pub fn fit_descriptor_limit(limits: &ListenersConfig) {
    let wanted = limits.max_connections as u64 * 2 + 512;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            open_files = got,
            max_connections = limits.max_connections,
            "the open-files limit is below what two listeners at their connection cap need; \
             raise it (ulimit -n / LimitNOFILE) or lower listeners.max_connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read or raise the open-files limit"),
    }
}

/// The whole request after its headers, body included, for routers that read bodies through
/// extractors: a client trickling a body is answered `408` and its connection closed.
pub fn with_request_timeout(router: Router, limits: &ListenersConfig) -> Router {
    router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ))
}

/// Accepts connections until `shutdown` resolves, then lets the requests in flight finish, for
/// at most `grace` (`[server] shutdown_grace`): a client trickling a body, or a request waiting
/// on a silent database, must not hold a stop (and a restart) for as long as it likes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ListenersConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this clock whenever it waits for a request head, so a keep-alive
        // connection that sends nothing is closed after the same time as a slow header.
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A permit before accepting: past the cap, new connections wait in the kernel's backlog
        // instead of costing us a task and buffers each.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: keep
                    // serving, after a pause so a persistent error does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            // A Router is always ready, so calling it without `poll_ready` is allowed.
            router.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Timeouts and resets end connections as errors; that is the point, not news.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Past the grace the connections left are abandoned: they end with the process.
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?grace,
            "stopping with requests still open: they did not finish within server.shutdown_grace"
        );
    }
    Ok(())
}
