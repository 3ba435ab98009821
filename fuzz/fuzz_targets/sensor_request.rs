//! The sensor's reading of a request. The input is a raw HTTP/1.1 request (head parsed with
//! `httparse`, body = the rest); it goes through what the sensor does with every request: the
//! SigV4 claim, the signature check with a fixed secret, the protocol and operation, and the
//! freshness check. Nothing may panic; a claim's key id is what the request said; and the same
//! request, re-signed here with the fixed secret (in its headers, then as a presigned URL), must
//! verify: the canonicalisation on both sides is `aws-sigv4`'s, so any difference is the sensor's.
#![no_main]

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use canarykeys_core::sensor::{freshness, protocol, sigv4};
use http::request::Parts;
use libfuzzer_sys::fuzz_target;
use url::form_urlencoded;

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2026-01-28T10:15:00Z, the fixed "now" of the freshness check and of the re-signing.
const NOW: u64 = 1_769_595_300;

/// The X-Amz-* query parameters a presigned URL carries; the re-signed URL brings its own.
const PRESIGN_PARAMS: [&str; 7] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

type Headers = Vec<(String, Vec<u8>)>;

fn build(method: &str, uri: &str, headers: &Headers) -> Option<Parts> {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_slice());
    }
    Some(req.body(()).ok()?.into_parts().0)
}

fuzz_target!(|data: &[u8]| {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(len)) = head.parse(data) else {
        return;
    };
    let (Some(method), Some(uri)) = (head.method, head.path) else {
        return;
    };
    let headers: Headers = head
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let body = &data[len..];
    let Some(parts) = build(method, uri, &headers) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);

    let claim = sigv4::claim(&parts);
    if let Some(claim) = &claim {
        key_id_is_what_was_sent(claim, &parts);
        for s3 in [false, true] {
            let _ = sigv4::verify(claim, &parts, Some(body), SECRET, s3);
            let _ = sigv4::verify(claim, &parts, None, SECRET, s3);
        }
        if let Some(stale) = freshness::check(claim, now) {
            assert!(stale.message.starts_with("Signature "), "{}", stale.message);
            let _ = stale.note();
        }
    }
    let service = claim
        .as_ref()
        .map(|c| protocol::clean_name(&c.scope.service))
        .unwrap_or_default();
    for body in [Some(body), None] {
        let call = protocol::classify(&service, &parts, body);
        // The operation becomes the hit's event name and an alert's title line.
        assert!(!call.operation.is_empty());
        assert!(
            !call.operation.chars().any(char::is_control),
            "{:?}",
            call.operation
        );
        if let Some(bucket) = &call.bucket {
            assert!(
                bucket.len() <= 63 && !bucket.contains(['/', '<', '"']),
                "{bucket:?}"
            );
        }
    }

    re_signed_in_headers_verifies(method, &parts, &headers, body, now);
    re_signed_presigned_verifies(method, &parts, &headers, now);
});

/// The claim's key id comes from the request, never from anywhere else.
fn key_id_is_what_was_sent(claim: &sigv4::Claim, parts: &Parts) {
    if let Some(auth) = parts.headers.get("authorization") {
        let auth = auth.to_str().expect("a claim is read from a text header");
        assert!(auth.contains(claim.key_id.as_str()), "{:?}", claim.key_id);
    } else {
        let query = parts
            .uri
            .query()
            .expect("a claim without a header is in the query");
        assert!(
            form_urlencoded::parse(query.as_bytes()).any(|(_, v)| v.contains(&*claim.key_id)),
            "{:?}",
            claim.key_id
        );
    }
    if !claim.v2 {
        assert!(!claim.key_id.contains('/'), "{:?}", claim.key_id);
    }
}

/// The request's own headers minus any signature, with a `host` (SigV4 always signs one), when
/// every value is text (the signer takes text only).
fn signable(headers: &Headers) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "authorization" | "x-amz-date" | "x-amz-security-token"
        ) {
            continue;
        }
        let value = http::HeaderValue::from_bytes(value).ok()?;
        out.push((name, value.to_str().ok()?.to_owned()));
    }
    if !out.iter().any(|(n, _)| n == "host") {
        out.push(("host".into(), "sensor.example".into()));
    }
    Some(out)
}

fn settings(location: SignatureLocation) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.signature_location = location;
    if location == SignatureLocation::QueryParams {
        settings.expires_in = Some(Duration::from_secs(900));
    }
    settings
}

fn sign_with(
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: SignableBody<'_>,
    settings: SigningSettings,
    now: SystemTime,
) -> Option<aws_sigv4::http_request::SigningInstructions> {
    let identity = Credentials::new(KEY, SECRET, None, None, "fuzz").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let request = SignableRequest::new(
        method,
        Cow::Borrowed(uri),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .ok()?;
    Some(sign(request, &params).ok()?.into_parts().0)
}

fn re_signed_in_headers_verifies(
    method: &str,
    parts: &Parts,
    headers: &Headers,
    body: &[u8],
    now: SystemTime,
) {
    let (Some(mut signed), Some(pq)) = (signable(headers), parts.uri.path_and_query()) else {
        return;
    };
    let uri = format!("http://sensor{pq}");
    let settings = settings(SignatureLocation::Headers);
    let Some(instructions) = sign_with(
        method,
        &uri,
        &signed,
        SignableBody::Bytes(body),
        settings,
        now,
    ) else {
        return;
    };
    for (name, value) in instructions.headers() {
        signed.push((name.to_owned(), value.to_owned()));
    }
    let signed: Headers = signed
        .into_iter()
        .map(|(n, v)| (n, v.into_bytes()))
        .collect();
    let parts = build(method, pq.as_str(), &signed).expect("the signed request is a request");
    let claim = sigv4::claim(&parts).expect("a signed request has a claim");
    assert_eq!(claim.key_id, KEY);
    assert!(
        sigv4::verify(&claim, &parts, Some(body), SECRET, false),
        "a request signed with the secret did not verify"
    );
    assert_eq!(freshness::check(&claim, now), None);
}

fn re_signed_presigned_verifies(method: &str, parts: &Parts, headers: &Headers, now: SystemTime) {
    let (Some(mut signed), Some(pq)) = (signable(headers), parts.uri.path_and_query()) else {
        return;
    };
    signed.retain(|(n, _)| n != "authorization");
    // The request's own X-Amz-* parameters would be taken for the signature's.
    let kept: Vec<&str> = pq
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !PRESIGN_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
                && !key.eq_ignore_ascii_case("Signature")
        })
        .collect();
    let base = format!("{}?{}", pq.path(), kept.join("&"));
    let uri = format!("http://sensor{base}");
    let settings = settings(SignatureLocation::QueryParams);
    let Some(instructions) = sign_with(
        method,
        &uri,
        &signed,
        SignableBody::UnsignedPayload,
        settings,
        now,
    ) else {
        return;
    };
    let mut query = kept.join("&");
    for (name, value) in instructions.params() {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.extend(form_urlencoded::byte_serialize(value.as_bytes()));
    }
    let target = format!("{}?{query}", pq.path());
    let signed: Headers = signed
        .into_iter()
        .map(|(n, v)| (n, v.into_bytes()))
        .collect();
    let Some(parts) = build(method, &target, &signed) else {
        return;
    };
    let claim = sigv4::claim(&parts).expect("a presigned URL has a claim");
    assert_eq!(
        (claim.key_id.as_str(), claim.presigned_expires),
        (KEY, Some(900))
    );
    assert!(
        sigv4::verify(&claim, &parts, Some(b""), SECRET, false),
        "a URL presigned with the secret did not verify"
    );
    assert_eq!(freshness::check(&claim, now), None);
}
