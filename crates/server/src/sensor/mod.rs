//! The AWS-compatible sensor: a second listener (`[sensor] listen`) that answers any SigV4
//! request like AWS answers an identity without permissions, and turns every request made with a
//! decoy key into a hit, within the request, through the ingest pipeline.
//!
//! It is its own router, not a route of the main one: it must accept any path and method an AWS
//! service uses, has its own body cap, and sends none of the web UI's headers (they would give it
//! away). It only reads the request and writes AWS's answer: the lookup, check and hit are one
//! `SensorService::observe` call. The parsing itself (claim, SigV4 check, protocol, freshness)
//! is `canarykeys_core::sensor`, pure, so the fuzz target `sensor_request` runs it without a
//! server.

mod hit;
mod respond;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use canarykeys_core::sensor::{freshness, protocol, sigv4};
use tokio::net::TcpListener;

use crate::config::{ListenersConfig, SensorConfig};
use crate::services::sensor::{Examined, KeyHolder, Observed, SensorService, SignedCall};
use crate::{Services, StartError};
use freshness::Stale;
use hit::Verdict;
use protocol::{Call, Protocol};
use respond::{Caller, Outcome};
use sigv4::Claim;

/// A bound sensor listener, ready to serve.
pub struct Sensor {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    limits: ListenersConfig,
}

#[derive(Clone)]
struct SensorState {
    sensor: SensorService,
    max_body_bytes: usize,
    /// How long the body may take to arrive; after that it counts as unread.
    body_timeout: std::time::Duration,
}

impl Sensor {
    /// Binds `[sensor] listen` (port 0 picks a free port); `None` when the sensor is off.
    pub async fn bind(
        config: &SensorConfig,
        limits: &ListenersConfig,
        services: &Services,
        request_timeout: Duration,
    ) -> Result<Option<Self>, StartError> {
        let Some(addr) = config.listen else {
            return Ok(None);
        };
        let listen_error = |source| StartError::Listen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        let state = SensorState {
            sensor: SensorService::new(
                services.tokens.clone(),
                services.ingest.clone(),
                services.clock.clone(),
            )
            .with_heartbeat(services.heartbeat.clone())
            .with_deadline(request_timeout),
            max_body_bytes: config.max_body_bytes,
            body_timeout: limits.request_timeout,
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

    /// Serves until `shutdown` resolves, then finishes the requests in flight (for at most
    /// `grace`).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "AWS-compatible sensor listening");
        crate::listen::serve(self.listener, self.router, &self.limits, shutdown, grace).await
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
    let (body, unread) = match tokio::time::timeout(
        state.body_timeout,
        axum::body::to_bytes(body, state.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => (Some(bytes), None),
        Ok(Err(_)) => (None, Some(Verdict::BodyTooLarge)),
        Err(_) => (None, Some(Verdict::BodyTooSlow)),
    };
    let claim = sigv4::claim(&parts)
        .or_else(|| sigv4::claim_in_form(&parts, body.as_deref().unwrap_or_default()));
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
    let request = SensorRequest {
        parts: &parts,
        body: body.as_deref(),
        unread,
        claim: &claim,
        call: &call,
        service: &service,
        peer,
        request_id: &request_id,
    };
    match state.sensor.observe(&request).await {
        Ok(Observed::Recorded(checked)) => answer(&checked.outcome(&service, &call)),
        Ok(Observed::UnknownKey) => answer(&Outcome::UnknownKey),
        // The hit is lost to storage (the database refused it, or did not answer within
        // `[database] request_timeout`): the caller gets AWS's server error, which AWS clients
        // retry, and the log keeps what is needed to find the use (the key id, escaped).
        Err(e) => {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain = format!("{chain}: {s}");
                source = s.source();
            }
            tracing::error!(
                error = %chain,
                key_id = ?request.key_id(),
                %peer,
                request_id,
                "sensor: could not record a hit"
            );
            answer(&Outcome::Internal)
        }
    }
}

/// The session token a request carries: the `X-Amz-Security-Token` header, or the query
/// parameter of a presigned URL.
fn security_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-amz-security-token") {
        return v.to_str().ok().map(str::to_owned);
    }
    url::form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v.into_owned())
}

/// One parsed request, for `SensorService::observe`.
struct SensorRequest<'a> {
    parts: &'a Parts,
    body: Option<&'a [u8]>,
    /// Why `body` is `None`: past the cap, or past the deadline.
    unread: Option<Verdict>,
    claim: &'a Claim,
    call: &'a Call,
    service: &'a str,
    peer: SocketAddr,
    request_id: &'a str,
}

/// What the checks found, kept until the hit is committed and the answer can be given.
struct Checked {
    caller: Caller,
    stale: Option<Stale>,
    /// A presigned URL asking for more than a week (refused before anything else, as by S3).
    expires_too_long: bool,
    verdict: Verdict,
    session: SessionState,
}

/// A session key's request, as its session token and expiry judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionState {
    /// A token's own key: no session to judge.
    None,
    Valid,
    /// Signed right, after the session's expiry: AWS answers `ExpiredToken`.
    Expired,
    /// The request's session token is missing or not the session's: AWS answers as to an
    /// unknown key.
    BadToken,
}

impl Checked {
    fn outcome(&self, service: &str, call: &Call) -> Outcome<'_> {
        if self.expires_too_long {
            return Outcome::ExpiresTooLong;
        }
        match (&self.stale, self.verdict) {
            // As AWS: the request's time is judged before its signature or permissions.
            (Some(stale), _) => Outcome::Stale(stale),
            // Only a verified signature earns an answer that names the identity. A bad one, or
            // one we could not check, gets AWS's answer to a bad signature.
            (None, Verdict::Verified) if self.session == SessionState::Expired => {
                Outcome::ExpiredToken
            }
            (None, Verdict::Verified) if self.session == SessionState::BadToken => {
                Outcome::UnknownKey
            }
            (None, Verdict::Verified) => {
                if service == "sts" && call.operation == "GetCallerIdentity" {
                    Outcome::Identity(&self.caller)
                } else {
                    Outcome::Denied(&self.caller)
                }
            }
            (
                None,
                Verdict::Failed
                | Verdict::BodyTooLarge
                | Verdict::BodyTooSlow
                | Verdict::SignatureV2
                | Verdict::KeyUnavailable,
            ) => Outcome::SignatureMismatch,
        }
    }
}

impl SignedCall for SensorRequest<'_> {
    type Answer = Checked;

    fn key_id(&self) -> &str {
        &self.claim.key_id
    }

    fn examine(
        &self,
        token: &KeyHolder,
        secret: Option<&str>,
        now_millis: i64,
    ) -> Examined<Checked> {
        let s3 = self.call.protocol == Protocol::S3;
        // S3 signs a declared payload hash, so its signature is checkable without the body.
        let verdict = match (secret, self.unread) {
            _ if self.claim.v2 => Verdict::SignatureV2,
            (None, _) => Verdict::KeyUnavailable,
            (Some(_), Some(unread)) if !s3 => unread,
            (Some(secret), _) if sigv4::verify(self.claim, self.parts, self.body, secret, s3) => {
                Verdict::Verified
            }
            (Some(_), _) => Verdict::Failed,
        };
        let caller = Caller {
            arn: format!("arn:aws:iam::{}:user/{}", token.account_id, token.username),
            account: token.account_id.to_string(),
            user_id: hit::user_id(token),
            region: protocol::clean_name(&self.claim.scope.region),
        };
        let now =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_millis).unwrap_or(0));
        let session = match &token.session {
            None => SessionState::None,
            Some(s) if !security_token(self.parts).is_some_and(|t| s.token.matches(&t)) => {
                SessionState::BadToken
            }
            Some(s) if now_millis >= s.expires_at => SessionState::Expired,
            Some(_) => SessionState::Valid,
        };
        let checked = Checked {
            stale: freshness::check(self.claim, now),
            expires_too_long: freshness::expires_too_long(self.claim),
            caller,
            verdict,
            session,
        };
        let error = respond::error(self.call, &checked.outcome(self.service, self.call));
        let record = hit::record(
            self.call,
            &hit::Context {
                parts: self.parts,
                peer: self.peer,
                key_id: &self.claim.key_id,
                token,
                caller: &checked.caller,
                request_id: self.request_id,
                verdict,
                presigned: self.claim.presigned_expires.is_some(),
                now_millis,
                error: error.as_ref(),
            },
        );
        // A stale request is still a use of the key: recorded, and marked replayed or expired.
        let note = match &checked.stale {
            _ if checked.expires_too_long => format!(
                "presigned URL refused (X-Amz-Expires over a week, as AWS refuses it); {}",
                verdict.note()
            ),
            Some(s) => format!("{}; {}", s.note(), verdict.note()),
            None => verdict.note().to_owned(),
        };
        let note = match checked.session {
            SessionState::None | SessionState::Valid => note,
            SessionState::Expired => {
                format!("session expired (answered ExpiredToken); {note}")
            }
            SessionState::BadToken => {
                format!("session token missing or wrong (answered as an invalid token); {note}")
            }
        };
        Examined {
            record,
            note,
            answer: checked,
        }
    }
}
