//! Signature Version 4 as the sensor sees it: where a request carries its signature (the
//! `Authorization` header or a presigned query string), what it claims (key id, scope, signed
//! headers), and whether the token's secret reproduces it. The canonical request and the
//! signature are the `aws-sigv4` crate's, the same code the AWS SDKs sign with; only the parsing
//! of the claim is ours.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use subtle::ConstantTimeEq;
use url::form_urlencoded;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The query parameters of a presigned URL that carry the signature rather than being signed.
const PRESIGN_PARAMS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
];

/// The credential scope: `<key>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: String,
    pub service: String,
}

/// What a request says about its own signature. Every field is caller input.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key_id: String,
    pub scope: Scope,
    /// Lower-case header names, as listed in `SignedHeaders`.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date`, `YYYYMMDD'T'HHMMSS'Z'`.
    pub date: Option<String>,
    /// `Some(X-Amz-Expires)` for a presigned URL, `None` for a signed header.
    pub presigned_expires: Option<u64>,
    /// An S3 Signature Version 2 request: only the key id is read, the signature is not checked.
    pub v2: bool,
}

/// Reads the SigV4 claim from the `Authorization` header or, failing that, the query string.
/// `None`: the request is not SigV4 at all (anonymous, or an older signature version).
pub fn claim(parts: &Parts) -> Option<Claim> {
    if let Some(auth) = parts.headers.get("authorization") {
        let auth = auth.to_str().ok()?.trim();
        let rest = auth.strip_prefix(ALGORITHM).unwrap_or_default();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in rest.split(',') {
            match field.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v.trim()),
                Some(("SignedHeaders", v)) => signed = Some(v.trim()),
                Some(("Signature", v)) => signature = Some(v.trim()),
                _ => {}
            }
        }
        if let Some(v2) = auth.strip_prefix("AWS ") {
            return v2_claim(v2.split(':').next()?, false);
        }
        let date = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok());
        return build(credential?, signed?, signature?, date, None);
    }
    let query = parts.uri.query()?;
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    // Signature Version 2 in a URL: S3's (`AWSAccessKeyId`, `Signature`, `Expires`) or the query
    // APIs' (`Action`, `SignatureVersion=2`, `AWSAccessKeyId`).
    if param("X-Amz-Algorithm").is_none()
        && (param("Signature").is_some() || param("SignatureVersion").is_some())
    {
        let key_id = param("AWSAccessKeyId")?;
        let mut claim = v2_claim(&key_id, true)?;
        if param("Action").is_some() {
            claim.scope.service = host_service(parts).unwrap_or_default();
        }
        return Some(claim);
    }
    if param("X-Amz-Algorithm")? != ALGORITHM {
        return None;
    }
    // A number too large for u64 is still a number: over the week's cap, not zero.
    let expires = param("X-Amz-Expires")
        .and_then(|e| match e.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => Some(u64::MAX),
            Err(_) => None,
        })
        .unwrap_or(0);
    build(
        &param("X-Amz-Credential")?,
        &param("X-Amz-SignedHeaders")?,
        &param("X-Amz-Signature")?,
        param("X-Amz-Date").as_deref(),
        Some(expires),
    )
}

/// A query API's Signature Version 2 in a form body (`POST` with `Action=…&AWSAccessKeyId=…&
/// SignatureVersion=2&Signature=…`), as older SDKs send it; for a request [`claim`] found no
/// signature in. Its signature is not checked either.
pub fn claim_in_form(parts: &Parts, body: &[u8]) -> Option<Claim> {
    let form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return None;
    }
    let param = |name: &str| {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("Signature").is_none() && param("SignatureVersion").is_none() {
        return None;
    }
    let mut claim = v2_claim(&param("AWSAccessKeyId")?, false)?;
    claim.scope.service = host_service(parts).unwrap_or_default();
    Some(claim)
}

/// S3's older signature (`Authorization: AWS <key>:<signature>`, or `AWSAccessKeyId=` in a URL),
/// which the AWS CLI v1's `s3 presign` and older tools still make. It names no region.
fn v2_claim(key_id: &str, presigned: bool) -> Option<Claim> {
    Some(Claim {
        key_id: key_id.to_owned(),
        scope: Scope {
            region: "us-east-1".into(),
            service: "s3".into(),
        },
        signed_headers: Vec::new(),
        signature: String::new(),
        date: None,
        presigned_expires: presigned.then_some(0),
        v2: true,
    })
}

/// The service a query API request names in its host (`sts.amazonaws.com`,
/// `ec2.eu-west-1.amazonaws.com`): Signature Version 2 has no scope to say it.
fn host_service(parts: &Parts) -> Option<String> {
    let host = parts.headers.get("host")?.to_str().ok()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    let rest = host.strip_suffix(".amazonaws.com")?;
    Some(rest.split('.').next()?.to_owned())
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    date: Option<&str>,
    presigned_expires: Option<u64>,
) -> Option<Claim> {
    let mut scope = credential.split('/');
    let (Some(key_id), Some(_day), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return None;
    };
    Some(Claim {
        key_id: key_id.to_owned(),
        scope: Scope {
            region: region.to_owned(),
            service: service.to_owned(),
        },
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature: signature.to_owned(),
        date: date.map(str::to_owned),
        presigned_expires,
        v2: false,
    })
}

/// `X-Amz-Date` as a time; the signer formats it back to the same text.
pub fn parse_date(date: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(date, format)
        .ok()?
        .assume_utc();
    Some(SystemTime::from(t))
}

/// Whether `secret` reproduces the claimed signature. S3 signs its path as sent and takes the
/// payload hash from `x-amz-content-sha256` (so `body` is not needed); other services normalise
/// the path and hash the body, so without the body (`None`: too large to read) they cannot be
/// checked and this answers `false`.
pub fn verify(claim: &Claim, parts: &Parts, body: Option<&[u8]>, secret: &str, s3: bool) -> bool {
    let Some(time) = claim.date.as_deref().and_then(parse_date) else {
        return false;
    };
    // Exactly the headers the client says it signed, with every value it sent for each; a listed
    // header that is missing cannot have been signed as received.
    let mut headers = Vec::new();
    for name in &claim.signed_headers {
        let before = headers.len();
        for value in parts.headers.get_all(name.as_str()) {
            match value.to_str() {
                Ok(v) => headers.push((name.as_str(), v)),
                Err(_) => return false,
            }
        }
        if headers.len() == before {
            return false;
        }
    }
    let mut settings = SigningSettings::default();
    // The client chose what to sign; the default exclusions (user-agent, …) would drop a header
    // it did sign.
    settings.excluded_headers = None;
    if s3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let uri = match claim.presigned_expires {
        Some(expires) => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(expires));
            // The signer adds the X-Amz-* signing parameters back itself.
            let kept: Vec<&str> = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or_default();
                    !PRESIGN_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
                })
                .collect();
            format!("http://sensor{}?{}", parts.uri.path(), kept.join("&"))
        }
        // The authority is a placeholder: `host` is always among the signed headers passed in.
        None => format!(
            "http://sensor{}",
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    };
    let identity = Credentials::new(&claim.key_id, secret, None, None, "sensor").into();
    let sign_with = |body: SignableBody<'_>| -> Option<String> {
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&claim.scope.region)
            .name(&claim.scope.service)
            .time(time)
            .settings(settings.clone())
            .build()
            .ok()?
            .into();
        let request = SignableRequest::new(
            parts.method.as_str(),
            Cow::Borrowed(uri.as_str()),
            headers.iter().copied(),
            body,
        )
        .ok()?;
        let output = sign(request, &params).ok()?;
        Some(output.signature().to_owned())
    };
    payloads(claim, parts, body, s3)
        .into_iter()
        .filter_map(sign_with)
        .any(|expected| bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())))
}

/// The payload hashes the client may have signed with. S3 names its own; a presigned URL of
/// another service is signed by some SDKs as `UNSIGNED-PAYLOAD` and by others over the body.
fn payloads<'a>(
    claim: &Claim,
    parts: &Parts,
    body: Option<&'a [u8]>,
    s3: bool,
) -> Vec<SignableBody<'a>> {
    let declared = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    let presigned = claim.presigned_expires.is_some();
    let mut out = Vec::new();
    match (s3, declared) {
        (true, Some("UNSIGNED-PAYLOAD")) => out.push(SignableBody::UnsignedPayload),
        (true, Some(hash)) => out.push(SignableBody::Precomputed(hash.to_owned())),
        (_, _) if presigned => out.push(SignableBody::UnsignedPayload),
        _ => {}
    }
    if out.is_empty() || (presigned && !s3) {
        if let Some(body) = body {
            out.push(SignableBody::Bytes(body));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Vectors from the AWS SigV4 test suite (as shipped with `aws-sigv4`): the verifier must
    //! accept what AWS's own reference signed, and nothing signed with another secret.

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const CREDENTIAL: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn auth(signed: &str, signature: &str) -> String {
        format!(
            "{ALGORITHM} Credential={CREDENTIAL}, SignedHeaders={signed}, Signature={signature}"
        )
    }

    #[test]
    fn a_header_signature_verifies_with_its_secret_only() {
        let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let auth = auth("host;x-amz-date", sig);
        let headers = [
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", auth.as_str()),
        ];
        let p = parts("GET", "/", &headers);
        let claim = claim(&p).unwrap();
        assert_eq!(
            (claim.key_id.as_str(), claim.scope.service.as_str()),
            ("AKIDEXAMPLE", "service")
        );
        assert!(verify(&claim, &p, Some(b""), SECRET, false));
        assert!(!verify(
            &claim,
            &p,
            Some(b""),
            &SECRET.replace('K', "k"),
            false
        ));
    }

    #[test]
    fn a_signed_body_is_hashed_as_received() {
        let sig = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let auth = auth(
            "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            sig,
        );
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "example.amazonaws.com"),
            ("content-length", "13"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "x-amz-content-sha256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
            ("authorization", auth.as_str()),
        ];
        let p = parts("POST", "/", &headers);
        let claim = claim(&p).unwrap();
        assert!(verify(&claim, &p, Some(b"Param1=value1"), SECRET, false));
        assert!(!verify(&claim, &p, Some(b"Param1=value2"), SECRET, false));
    }

    #[test]
    fn a_presigned_url_verifies() {
        let uri = "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2F\
                   us-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Signed\
                   Headers=host&X-Amz-Expires=3600&X-Amz-Signature=e93c787ed7f371d5c6b165c1b38e\
                   de9550f4dce4144713e844b25b7192d3865d";
        let p = parts("GET", uri, &[("host", "example.amazonaws.com")]);
        let claim = claim(&p).unwrap();
        assert_eq!(claim.presigned_expires, Some(3600));
        assert!(verify(&claim, &p, Some(b""), SECRET, false));
    }

    #[test]
    fn signature_version_2_names_its_key_only() {
        let p = parts(
            "GET",
            "/b/k?AWSAccessKeyId=AKIDEXAMPLE&Signature=x&Expires=1",
            &[],
        );
        let c = claim(&p).unwrap();
        assert!(c.v2 && c.key_id == "AKIDEXAMPLE" && c.scope.service == "s3");
        let c = claim(&parts(
            "GET",
            "/",
            &[("authorization", "AWS AKIDEXAMPLE:c2ln")],
        ))
        .unwrap();
        assert!(c.v2 && c.key_id == "AKIDEXAMPLE");
        assert!(claim(&parts("GET", "/", &[("authorization", "Bearer x")])).is_none());
        // The query APIs' version 2: the service comes from the host, when it names one.
        let query = "/?Action=GetCallerIdentity&AWSAccessKeyId=AKIDEXAMPLE&SignatureVersion=2\
                     &SignatureMethod=HmacSHA256&Timestamp=2026-01-28T10%3A15%3A00Z&Signature=c2ln";
        let c = claim(&parts("GET", query, &[("host", "sts.amazonaws.com")])).unwrap();
        assert!(c.v2 && c.key_id == "AKIDEXAMPLE" && c.scope.service == "sts");
        let c = claim(&parts("GET", query, &[("host", "127.0.0.1:4566")])).unwrap();
        assert!(c.v2 && c.scope.service.is_empty());
        // The same in a POST body, as older SDKs send it.
        let post = parts("POST", "/", &[("host", "sts.amazonaws.com")]);
        assert!(claim(&post).is_none());
        let c = claim_in_form(&post, &query.as_bytes()[2..]).unwrap();
        assert!(c.v2 && c.key_id == "AKIDEXAMPLE" && c.scope.service == "sts");
        assert!(claim_in_form(&post, b"Action=GetCallerIdentity").is_none());
    }
}
