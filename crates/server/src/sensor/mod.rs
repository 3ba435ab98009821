//! The AWS-compatible sensor: a second listener (`[sensor] listen`) that answers any SigV4
//! request like AWS answers an identity without permissions, and turns every request made with a
//! decoy key into a hit, within the request, through the ingest pipeline.
//!
//! It is its own router, not a route of the main one: it must accept any path and method an AWS
//! service uses, has its own body cap, and sends none of the web UI's headers (they would give it
//! away). It does no work for the caller beyond the token lookup and the hit.

mod freshness;
mod hit;
mod protocol;
mod respond;
mod sigv4;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use canarykeys_core::AccessKeyId;
use tokio::net::TcpListener;

use crate::config::{ListenersConfig, SensorConfig};
use crate::services::{DeliveryPath, IngestService, TokenService};
use crate::{Services, StartError};
use hit::Verdict;
use protocol::Protocol;
use respond::{Caller, Outcome};

/// A bound sensor listener, ready to serve.
pub struct Sensor {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    limits: ListenersConfig,
}

#[derive(Clone)]
struct SensorState {
    tokens: TokenService,
    ingest: IngestService,
    max_body_bytes: usize,
    /// How long the body may take to arrive; after that it counts as unread.
    body_timeout: std::time::Duration,
    clock: crate::clock::SharedClock,
}

impl Sensor {
    /// Binds `[sensor] listen` (port 0 picks a free port); `None` when the sensor is off.
    pub async fn bind(
        config: &SensorConfig,
        limits: &ListenersConfig,
        services: &Services,
    ) -> Result<Option<Self>, StartError> {
        let Some(addr) = config.listen else {
            return Ok(None);
        };
        let listen_error = |source| StartError::Listen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        let state = SensorState {
            tokens: services.tokens.clone(),
            ingest: services.ingest.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: limits.request_timeout,
            clock: services.clock.clone(),
        };
        let router = Router::new().fallback(handle).with_state(state);
        Ok(Some(Self {
            listener,
            router,
            address,
            limits: limits.clone(),
        }))
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "AWS-compatible sensor listening");
        crate::listen::serve(self.listener, self.router, &self.limits, shutdown).await
    }
}

async fn handle(
    State(state): State<SensorState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Past the cap or the deadline the body stays unread; the key id is in the headers, so the
    // hit still counts. No route-wide timeout here: it would drop the hit with the request.
    let body = tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.max_body_bytes),
    )
    .await
    .ok()
    .and_then(Result::ok);
    let claim = sigv4::claim(&parts);
    let service = claim
        .as_ref()
        .map(|c| protocol::clean_name(&c.scope.service))
        .unwrap_or_default();
    let call = protocol::classify(&service, &parts, body.as_deref());
    let s3 = call.protocol == Protocol::S3;
    let request_id = hit::request_id(s3);
    let head = parts.method == Method::HEAD;
    let answer = |outcome: &Outcome<'_>| respond::render(&call, outcome, &request_id, head);

    let Some(claim) = claim else {
        return answer(&Outcome::Unsigned);
    };
    let token = match AccessKeyId::parse(&claim.key_id) {
        Ok(key) => state.tokens.find_by_key(&key).await,
        Err(_) => Ok(None),
    };
    let token = match token {
        Ok(Some(token)) => token,
        // Keys that belong to no token are counted, never alerted: scanners try made-up keys.
        Ok(None) => {
            let metrics = state.ingest.metrics();
            metrics.add("canarykeys_ingest_unknown_key_total", "sensor", 1);
            return answer(&Outcome::UnknownKey);
        }
        Err(e) => {
            tracing::error!(error = %e, "sensor: token lookup failed");
            return answer(&Outcome::Internal);
        }
    };
    let credentials = match state.tokens.credentials(&token) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, token = %token.id, "sensor: cannot open the token's secret");
            return answer(&Outcome::Internal);
        }
    };
    // S3 signs a declared payload hash, so its signature is checkable without the body.
    let verdict = if claim.v2 {
        Verdict::SignatureV2
    } else if body.is_none() && !s3 {
        Verdict::BodyTooLarge
    } else if sigv4::verify(
        &claim,
        &parts,
        body.as_deref(),
        credentials.secret_access_key.expose(),
        s3,
    ) {
        Verdict::Verified
    } else {
        Verdict::Failed
    };
    let caller = Caller {
        arn: format!("arn:aws:iam::{}:user/{}", token.account_id, token.username),
        account: token.account_id.to_string(),
        user_id: hit::user_id(&token),
        region: protocol::clean_name(&claim.scope.region),
    };
    // As AWS: the request's time is judged before its signature or permissions.
    let stale = freshness::check(&claim, std::time::SystemTime::now());
    let outcome = match (&stale, verdict) {
        (Some(stale), _) => Outcome::Stale(stale),
        // As AWS: a bad signature is refused before permissions are even looked at.
        (None, Verdict::Failed) => Outcome::SignatureMismatch,
        _ if service == "sts" && call.operation == "GetCallerIdentity" => {
            Outcome::Identity(&caller)
        }
        _ => Outcome::Denied(&caller),
    };
    let error = respond::error(&call, &outcome);
    let record = hit::record(
        &call,
        &hit::Context {
            parts: &parts,
            peer,
            key_id: &claim.key_id,
            token: &token,
            caller: &caller,
            request_id: &request_id,
            verdict,
            presigned: claim.presigned_expires.is_some(),
            now_millis: state.clock.now_millis(),
            error: error.as_ref(),
        },
    );
    // Answer only after the hit is committed, as the ingest endpoint does: a failure here lets
    // the caller's retry be recorded instead.
    // A stale request is still a use of the key: recorded, and marked replayed or expired.
    let note = match &stale {
        Some(s) => format!("{}; {}", s.note(), verdict.note()),
        None => verdict.note().to_owned(),
    };
    if let Err(e) = state
        .ingest
        .record(&[record], DeliveryPath::Sensor, Some(&note), false)
        .await
    {
        tracing::error!(error = %e, token = %token.id, "sensor: could not record a hit");
        return answer(&Outcome::Internal);
    }
    answer(&outcome)
}
