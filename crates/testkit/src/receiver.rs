//! A loopback webhook receiver for the fault tests: records every generic `canarykeys.alert/v1`
//! body it accepts, and can be taken down (its port refuses connections) and brought back on the
//! same port, to stand for a receiver that is unreachable for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    bodies: Mutex<Vec<Value>>,
    /// False while down: connections a client kept alive from before are answered 503, so
    /// nothing is recorded while the receiver is "unreachable".
    up: AtomicBool,
}

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if !shared.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.bodies.lock().unwrap().push(value);
    StatusCode::OK
}

impl Receiver {
    /// Starts listening on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Self {
            addr,
            shared: Arc::default(),
            task: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        self.shared.up.store(true, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// The URL to give a token as its webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Stops listening: new connections are refused until [`Receiver::up`].
    pub fn down(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the receiver's port is free again");
        self.serve(listener);
    }

    /// Every body accepted so far, in arrival order.
    /// The bodies whose `"type"` is `kind` (operator and token alerts share a receiver).
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| b["type"] == kind)
            .collect()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.shared.bodies.lock().unwrap().clone()
    }

    /// How many bodies were accepted so far.
    pub fn count(&self) -> usize {
        self.shared.bodies.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}
