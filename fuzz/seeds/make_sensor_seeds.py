#!/usr/bin/env python3
"""Writes the sensor_request fuzz seeds: real-shaped AWS requests, signed by botocore (the AWS
CLI's signer) with the fuzz target's fixed key and secret, as raw HTTP/1.1 files. Run from the
repository root: `python3 fuzz/seeds/make_sensor_seeds.py`. The output is committed; botocore is
only needed to regenerate it."""
import datetime
import os
from urllib.parse import urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime.datetime(2026, 1, 28, 10, 15, 0)  # the target's fixed "now"
OUT = os.path.join(os.path.dirname(__file__), "sensor_request")


class FixedClock(datetime.datetime):
    when = NOW

    @classmethod
    def utcnow(cls):
        return cls.when

    @classmethod
    def now(cls, tz=None):
        return cls.when.replace(tzinfo=tz) if tz else cls.when


botocore.auth.datetime.datetime = FixedClock


def raw(request):
    url = urlsplit(request.url)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {url.netloc}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed(name, auth, method, url, headers=None, body=b""):
    req = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    auth.add_auth(req)
    req.url = req.url  # presigned auth rewrites the URL
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(raw(req.prepare()))


creds = Credentials(KEY, SECRET)
form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
v4 = botocore.auth.SigV4Auth
signed("sts-get-caller-identity.http", v4(creds, "sts", "us-east-1"), "POST",
       "https://sts.amazonaws.com/", form, b"Action=GetCallerIdentity&Version=2011-06-15")
signed("iam-list-users-query.http", v4(creds, "iam", "us-east-1"), "GET",
       "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08&MaxItems=10")
signed("secretsmanager-json-target.http", v4(creds, "secretsmanager", "eu-west-1"), "POST",
       "https://secretsmanager.eu-west-1.amazonaws.com/",
       {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.ListSecrets"},
       b'{"MaxResults":20}')
signed("s3-presigned-get.http",
       botocore.auth.S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=3600), "GET",
       "https://decoy-backups.s3.us-east-1.amazonaws.com/db/dump%202026.sql.gz?versionId=3")
signed("s3-header-signed-list.http", botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1"), "GET",
       "https://s3.us-east-1.amazonaws.com/decoy-backups?list-type=2&prefix=db%2F",
       {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
signed("lambda-invoke-rest-json.http", v4(creds, "lambda", "us-west-2"), "POST",
       "https://lambda.us-west-2.amazonaws.com/2015-03-31/functions/billing-export/invocations",
       {"Content-Type": "application/json"}, b'{"dry":true}')
signed("ec2-describe-presigned.http", botocore.auth.SigV4QueryAuth(creds, "ec2", "us-east-1", expires=60),
       "GET", "https://ec2.us-east-1.amazonaws.com/?Action=DescribeInstances&Version=2016-11-15")
FixedClock.when = datetime.datetime(2020, 5, 1, 8, 0, 0)  # a replay: far outside 15 minutes
signed("sts-replayed.http", v4(creds, "sts", "us-east-1"), "POST", "https://sts.amazonaws.com/",
       form, b"Action=GetCallerIdentity&Version=2011-06-15")
with open(os.path.join(OUT, "s3-signature-v2-presigned.http"), "wb") as f:
    f.write(b"GET /decoy-backups/db/dump.sql.gz?AWSAccessKeyId=" + KEY.encode()
            + b"&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D&Expires=1769598900 HTTP/1.1\r\n"
            b"Host: s3.amazonaws.com\r\n\r\n")
