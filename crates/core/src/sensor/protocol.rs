//! What a request is, in AWS's terms: the wire protocol it speaks (which decides how an answer
//! must look) and the operation it calls (which becomes the hit's event name). Everything here
//! is read from caller input, so names are reduced to the characters AWS uses before they go
//! anywhere.

use http::request::Parts;
use http::Method;
use url::form_urlencoded;

/// The protocol families of AWS APIs, as far as an error answer differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `Action=` in a form body or query string; XML `<ErrorResponse>` (STS, IAM, SNS, …).
    Query,
    /// EC2's variant of the query protocol, with `<Response><Errors>`.
    Ec2,
    /// `X-Amz-Target` with a JSON body; `{"__type": …}` errors (Secrets Manager, DynamoDB, …).
    Json,
    /// Resources in the path, XML errors: S3.
    S3,
    /// Resources in the path, JSON errors with `x-amzn-ErrorType` (Lambda, …).
    RestJson,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Ec2 => "ec2",
            Self::Json => "json",
            Self::S3 => "rest-xml",
            Self::RestJson => "rest-json",
        }
    }
}

/// One classified request.
#[derive(Clone, Debug)]
pub struct Call {
    pub protocol: Protocol,
    /// The signing name from the scope (`sts`, `s3`, …), cleaned; empty when unsigned.
    pub service: String,
    /// The event name: `GetCallerIdentity`, `ListBuckets`, or `<METHOD> <path>` for REST calls
    /// we do not know.
    pub operation: String,
    /// The IAM action an error message names (`s3:ListAllMyBuckets`), when known.
    pub action: Option<String>,
    /// The resource an error message names: an ARN or `*`.
    pub resource: Option<String>,
    /// S3 bucket and key, for the hit's request parameters.
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// Keeps the characters AWS uses in names; anything else means "not a name".
fn clean(s: &str, extra: &[char], max: usize) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    ok.then(|| s.to_owned())
}

/// A service signing name or region from the scope: lower case, `[a-z0-9.-]`, or empty.
pub fn clean_name(s: &str) -> String {
    clean(&s.to_ascii_lowercase(), &['-', '.'], 40).unwrap_or_default()
}

/// `%XX` decoding for display (paths are not form-encoded: `+` stays `+`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first value of `name` in a form-encoded query string or body.
fn form_value(form: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(form)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// At most `max` characters of `s`, control characters (C0 and C1: the request line may carry
/// raw bytes past ASCII) replaced by U+FFFD, since the result becomes an event name and an
/// alert's title line.
fn truncate(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Classifies a request. `service` is the scope's signing name ("" when there is none);
/// `body` is `None` when it was too large to read.
pub fn classify(service: &str, parts: &Parts, body: Option<&[u8]>) -> Call {
    let target = header(parts, "x-amz-target");
    let query = parts.uri.query().unwrap_or_default();
    let action = form_value(query.as_bytes(), "Action").or_else(|| {
        let form = header(parts, "content-type")
            .is_none_or(|t| t.starts_with("application/x-www-form-urlencoded"));
        form_value(body.filter(|_| form)?, "Action")
    });
    let mut call = Call {
        protocol: Protocol::RestJson,
        service: service.to_owned(),
        operation: String::new(),
        action: None,
        resource: None,
        bucket: None,
        key: None,
    };
    if service == "s3" || (service.is_empty() && target.is_none() && action.is_none()) {
        call.protocol = Protocol::S3;
        s3(&mut call, parts);
    } else if let Some(target) = target {
        call.protocol = Protocol::Json;
        call.operation = target
            .rsplit('.')
            .next()
            .and_then(|op| clean(op, &[], 80))
            .unwrap_or_default();
    } else if service == "ec2"
        || action.is_some()
        || QUERY_SERVICES.split(' ').any(|s| s == service)
    {
        call.protocol = if service == "ec2" {
            Protocol::Ec2
        } else {
            Protocol::Query
        };
        call.operation = action.and_then(|a| clean(&a, &[], 80)).unwrap_or_default();
    } else if service == "lambda" {
        lambda(&mut call, parts);
    }
    if call.operation.is_empty() {
        call.operation = format!("{} {}", parts.method, truncate(parts.uri.path(), 200));
    } else if call.action.is_none() && !service.is_empty() {
        call.action = Some(format!("{service}:{}", call.operation));
    }
    call
}

/// Services that speak only the query protocol: without a readable `Action` (a body past the
/// cap), they still answer in their own format.
const QUERY_SERVICES: &str =
    "sts iam sns rds cloudformation elasticloadbalancing autoscaling elasticache redshift ses";

/// Bucket sub-resources (`?policy`) and the word their operations share (`GetBucketPolicy`).
const BUCKET_SUBRESOURCES: &[(&str, &str)] = &[
    ("acl", "BucketAcl"),
    ("policy", "BucketPolicy"),
    ("tagging", "BucketTagging"),
    ("versioning", "BucketVersioning"),
    ("encryption", "BucketEncryption"),
    ("lifecycle", "BucketLifecycleConfiguration"),
    ("cors", "BucketCors"),
    ("website", "BucketWebsite"),
    ("logging", "BucketLogging"),
    ("notification", "BucketNotificationConfiguration"),
    ("replication", "BucketReplication"),
    ("location", "BucketLocation"),
    ("publicAccessBlock", "PublicAccessBlock"),
    ("ownershipControls", "BucketOwnershipControls"),
];

/// S3, path style (`/bucket/key`) or virtual-host style (`bucket.s3.…`).
fn s3(call: &mut Call, parts: &Parts) {
    let host = header(parts, "host").and_then(|h| h.split(':').next());
    let host = host.unwrap_or_default();
    let path = parts.uri.path().trim_start_matches('/');
    let (bucket, key) = match host.find(".s3.").or_else(|| host.find(".s3-")) {
        Some(end) => (&host[..end], path),
        None => path.split_once('/').unwrap_or((path, "")),
    };
    let has =
        |name: &str| form_value(parts.uri.query().unwrap_or_default().as_bytes(), name).is_some();
    let m = &parts.method;
    let verb = match *m {
        Method::GET => "Get",
        Method::PUT => "Put",
        Method::DELETE => "Delete",
        _ => "",
    };
    let (operation, action) = if bucket.is_empty() {
        if *m != Method::GET {
            return;
        }
        ("ListBuckets".to_owned(), "ListAllMyBuckets".to_owned())
    } else if clean(bucket, &['-', '.'], 63).is_none() {
        return;
    } else if key.is_empty() {
        let sub = BUCKET_SUBRESOURCES.iter().find(|(q, _)| has(q));
        let op = match (m.as_str(), sub) {
            (_, Some((_, word))) if !verb.is_empty() => format!("{verb}{word}"),
            ("GET", None) if has("list-type") => "ListObjectsV2".into(),
            ("GET", None) if has("uploads") => "ListMultipartUploads".into(),
            ("GET", None) if has("versions") => "ListObjectVersions".into(),
            ("GET", None) => "ListObjects".into(),
            ("HEAD", _) => "HeadBucket".into(),
            ("PUT", None) => "CreateBucket".into(),
            ("DELETE", None) => "DeleteBucket".into(),
            ("POST", _) if has("delete") => "DeleteObjects".into(),
            _ => return,
        };
        let action = match op.as_str() {
            "ListObjectsV2" | "ListObjects" | "HeadBucket" => "ListBucket".into(),
            "ListMultipartUploads" => "ListBucketMultipartUploads".into(),
            "ListObjectVersions" => "ListBucketVersions".into(),
            "DeleteObjects" => "DeleteObject".into(),
            _ => op.clone(),
        };
        call.resource = Some(format!("arn:aws:s3:::{bucket}"));
        (op, action)
    } else {
        let copy = parts.headers.contains_key("x-amz-copy-source");
        let op = match m.as_str() {
            "GET" if has("acl") => "GetObjectAcl",
            "GET" if has("tagging") => "GetObjectTagging",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "PUT" if has("uploadId") => "UploadPart",
            "PUT" if has("tagging") => "PutObjectTagging",
            "PUT" if has("acl") => "PutObjectAcl",
            "PUT" if copy => "CopyObject",
            "PUT" => "PutObject",
            "DELETE" if has("uploadId") => "AbortMultipartUpload",
            "DELETE" => "DeleteObject",
            "POST" if has("uploads") => "CreateMultipartUpload",
            "POST" if has("uploadId") => "CompleteMultipartUpload",
            _ => return,
        };
        let action = match op {
            "HeadObject" => "GetObject",
            "UploadPart" | "CopyObject" | "CreateMultipartUpload" | "CompleteMultipartUpload" => {
                "PutObject"
            }
            other => other,
        };
        let key = truncate(&percent_decode(key), 1024);
        call.resource = Some(format!("arn:aws:s3:::{bucket}/{key}"));
        call.key = Some(key);
        (op.to_owned(), action.to_owned())
    };
    call.bucket = (!bucket.is_empty()).then(|| bucket.to_owned());
    call.operation = operation;
    call.action = Some(format!("s3:{action}"));
}

/// The Lambda REST paths an intruder is most likely to try.
fn lambda(call: &mut Call, parts: &Parts) {
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let m = parts.method.as_str();
    let (op, function) = match (m, segments.as_slice()) {
        ("GET", [_, "functions"]) => ("ListFunctions", None),
        ("POST", [_, "functions"]) => ("CreateFunction", None),
        ("GET", [_, "functions", f]) => ("GetFunction", Some(f)),
        ("DELETE", [_, "functions", f]) => ("DeleteFunction", Some(f)),
        ("POST", [_, "functions", f, "invocations"]) => ("Invoke", Some(f)),
        ("GET", [_, "functions", f, "configuration"]) => ("GetFunctionConfiguration", Some(f)),
        ("PUT", [_, "functions", f, "configuration"]) => ("UpdateFunctionConfiguration", Some(f)),
        ("PUT", [_, "functions", f, "code"]) => ("UpdateFunctionCode", Some(f)),
        ("GET", [_, "functions", f, "policy"]) => ("GetPolicy", Some(f)),
        ("GET", [_, "layers"]) => ("ListLayers", None),
        ("GET", [_, "event-source-mappings"]) => ("ListEventSourceMappings", None),
        _ => return,
    };
    call.operation = op.to_owned();
    let action = if op == "Invoke" { "InvokeFunction" } else { op };
    call.action = Some(format!("lambda:{action}"));
    call.resource = Some(match function.and_then(|f| clean(f, &['-', '_'], 64)) {
        Some(f) => format!("function:{f}"),
        None => "*".into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str, method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Call {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        classify(service, &req.body(()).unwrap().into_parts().0, Some(body))
    }

    #[test]
    fn s3_paths_become_operations_and_iam_actions() {
        let host = [("host", "127.0.0.1:4566")];
        let cases = [
            ("GET", "/", "ListBuckets", "s3:ListAllMyBuckets"),
            (
                "GET",
                "/b?list-type=2&prefix=x",
                "ListObjectsV2",
                "s3:ListBucket",
            ),
            ("GET", "/b?policy", "GetBucketPolicy", "s3:GetBucketPolicy"),
            ("HEAD", "/b/a/k%20y", "HeadObject", "s3:GetObject"),
            (
                "PUT",
                "/b/k?partNumber=1&uploadId=u",
                "UploadPart",
                "s3:PutObject",
            ),
        ];
        for (method, uri, op, action) in cases {
            let c = call("s3", method, uri, &host, b"");
            assert_eq!(
                (c.operation.as_str(), c.action.as_deref()),
                (op, Some(action)),
                "{uri}"
            );
        }
        let c = call(
            "s3",
            "GET",
            "/a/k%20y",
            &[("host", "a.s3.amazonaws.com")],
            b"",
        );
        assert_eq!(
            (c.bucket.as_deref(), c.key.as_deref()),
            (Some("a"), Some("a/k y"))
        );
        let c = call("s3", "PATCH", "/b/k", &host, b"");
        assert_eq!((c.operation.as_str(), c.action), ("PATCH /b/k", None));
    }

    /// Found by the sensor_request smoke fuzz: a raw C1 control (U+009C) in the request path
    /// reached the operation, which is a hit's event name and an alert's title line.
    #[test]
    fn control_characters_in_the_path_never_reach_the_operation() {
        let iam = [("host", "iam.amazonaws.com")];
        let c = call("", "GET", "//\u{9c}vion=ListUsers&MaxItems=10", &iam, b"");
        assert_eq!(c.operation, "GET //\u{fffd}vion=ListUsers&MaxItems=10");
        let c = call("s3", "GET", "/b/k\u{85}ey", &[("host", "127.0.0.1")], b"");
        assert_eq!(c.key.as_deref(), Some("k\u{fffd}ey"));
        let c = call(
            "s3",
            "GET",
            "/b/k%0d%0aX:%20y",
            &[("host", "127.0.0.1")],
            b"",
        );
        assert_eq!(c.key.as_deref(), Some("k\u{fffd}\u{fffd}X: y"));
    }

    #[test]
    fn query_json_and_rest_json_operations() {
        let form = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let c = call(
            "iam",
            "POST",
            "/",
            &form,
            b"Action=ListUsers&Version=2010-05-08",
        );
        assert_eq!(
            (c.protocol, c.operation.as_str()),
            (Protocol::Query, "ListUsers")
        );
        let c = call("ec2", "GET", "/?Action=DescribeInstances", &[], b"");
        assert_eq!(
            (c.protocol, c.action.as_deref()),
            (Protocol::Ec2, Some("ec2:DescribeInstances"))
        );
        let target = [("x-amz-target", "secretsmanager.ListSecrets")];
        let c = call("secretsmanager", "POST", "/", &target, b"{}");
        assert_eq!(
            (c.protocol, c.operation.as_str()),
            (Protocol::Json, "ListSecrets")
        );
        let c = call(
            "lambda",
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[],
            b"",
        );
        assert_eq!(c.action.as_deref(), Some("lambda:InvokeFunction"));
        // Caller-made names that are not names do not become event names.
        let c = call("sts", "POST", "/", &form, b"Action=Get<script>");
        assert_eq!(
            (c.protocol, c.operation.as_str()),
            (Protocol::Query, "POST /")
        );
    }
}
