#!/usr/bin/env python3
"""A small S3 stand-in for benchmarks: ListObjectsV2 and GetObject of a directory's files.

One bucket whose objects are the files under a directory, so a benchmark of the S3 poller
measures the poller, not moto.

    python3 bench/s3stub.py --root DIR --bucket NAME --port PORT [--closed]

Path-style addressing only (`GET /<bucket>?list-type=2&…`, `GET /<bucket>/<key>`), as the server's
S3 client uses whenever an endpoint URL is set. The SigV4 authorization header is not checked.
ListObjectsV2 honours `prefix`, `delimiter` (CommonPrefixes), `start-after`, `max-keys` (capped at
1,000, as S3 does) and `continuation-token` (opaque; it wins over start-after), with `IsTruncated`
and `NextContinuationToken` when more keys follow. GetObject sends the file's bytes with
Content-Length (sendfile from the page cache); a missing key is a 404 `NoSuchKey`, another bucket a
404 `NoSuchBucket`. HTTP/1.1 with keep-alive, TCP_NODELAY, Content-Length on every answer.

The key list is read from the directory (and sorted, then searched with bisect) when the bucket is
opened: with --closed the bucket lists as empty until `POST /_stub/open`, so a benchmark can start
its clock when the poller can first see the files. `GET /_stub/stats` answers JSON: objects,
GetObject and ListObjectsV2 requests served, distinct keys fetched, keys never fetched (the first
few), the monotonic times (CLOCK_MONOTONIC, comparable across processes) of the first and last
GetObject, the open time, and the most requests (lists and gets) answered at once.
`POST /_stub/reset` zeroes the counters.

Python standard library only; also importable (`Stub(root, bucket).serve(port)`).
"""
import argparse, base64, bisect, email.utils, hashlib, http.server, json, os, socket, sys
import threading, time, urllib.parse, uuid
from xml.sax.saxutils import escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
PAGE_MAX = 1000


def successor(prefix):
    """The least string above every string that starts with `prefix` (ASCII keys)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class Stub:
    def __init__(self, root, bucket, opened=True):
        self.root = os.path.abspath(root)
        self.bucket = bucket
        self.lock = threading.Lock()
        self.keys, self.meta = [], {}
        self.opened_at = None
        self.inflight = 0
        self.reset()
        if opened:
            self.open()

    def reset(self):
        with self.lock:
            self.gets = {}
            self.get_requests = 0
            self.list_requests = 0
            self.first_get = self.last_get = None
            self.missing_gets = 0
            self.max_inflight = self.inflight

    def open(self):
        """(Re)reads the directory and makes its files visible."""
        meta = {}
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                path = os.path.join(dirpath, f)
                st = os.stat(path)
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                # A stable, well-formed ETag without reading the bytes (not their MD5).
                etag = hashlib.md5(f"{key}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
                meta[key] = (st.st_size, st.st_mtime, etag)
        with self.lock:
            self.meta = meta
            self.keys = sorted(meta)
            self.opened_at = time.monotonic()

    def stats(self):
        with self.lock:
            never = [k for k in self.keys if k not in self.gets]
            return {
                "objects": len(self.keys),
                "get_requests": self.get_requests,
                "fetched": len(self.gets),
                "fetched_more_than_once": sum(1 for n in self.gets.values() if n > 1),
                "never_fetched": len(never),
                "never_fetched_first": never[:5],
                "missing_gets": self.missing_gets,
                "list_requests": self.list_requests,
                "first_get": self.first_get,
                "last_get": self.last_get,
                "opened_at": self.opened_at,
                "max_in_flight": self.max_inflight,
            }

    def list_v2(self, q):
        """The ListBucketResult XML of one ListObjectsV2 call."""
        one = lambda name, default="": q.get(name, [default])[0]
        prefix, delimiter = one("prefix"), one("delimiter")
        start_after, token = one("start-after"), one("continuation-token")
        try:
            max_keys = max(0, min(PAGE_MAX, int(one("max-keys", str(PAGE_MAX)))))
        except ValueError:
            return None
        with self.lock:
            self.list_requests += 1
            keys = self.keys
        i = bisect.bisect_left(keys, prefix)
        if token:
            kind, _, mark = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
            i = max(i, bisect.bisect_left(keys, successor(mark)) if kind == "p"
                    else bisect.bisect_right(keys, mark))
        elif start_after:
            i = max(i, bisect.bisect_right(keys, start_after))
        contents, prefixes, count, last, truncated = [], [], 0, None, False
        while i < len(keys):
            k = keys[i]
            if not k.startswith(prefix):
                break
            if count == max_keys:
                truncated = True
                break
            if delimiter:
                j = k.find(delimiter, len(prefix))
                if j >= 0:
                    cp = k[:j + len(delimiter)]
                    prefixes.append(cp)
                    count += 1
                    last = "p:" + cp
                    i = bisect.bisect_left(keys, successor(cp), i)
                    continue
            contents.append(k)
            count += 1
            last = "k:" + k
            i += 1
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<ListBucketResult xmlns="{NS}">',
               f"<Name>{escape(self.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"]
        if delimiter:
            out.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if start_after:
            out.append(f"<StartAfter>{escape(start_after)}</StartAfter>")
        if token:
            out.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        out.append(f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{count}</KeyCount>"
                   f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            nxt = base64.urlsafe_b64encode(last.encode()).decode()
            out.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
        meta = self.meta
        for k in contents:
            size, mtime, etag = meta[k]
            out.append(f"<Contents><Key>{escape(k)}</Key><LastModified>{iso(mtime)}</LastModified>"
                       f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")
        for p in prefixes:
            out.append(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>")
        out.append("</ListBucketResult>")
        return "".join(out).encode()

    def serve(self, port, host="127.0.0.1"):
        stub = self

        class Handler(StubHandler):
            pass

        Handler.stub = stub
        server = http.server.ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        return server


def error_xml(code, message, resource=""):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message><Resource>{escape(resource)}</Resource>"
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>").encode()


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stub = None

    def setup(self):
        super().setup()
        # Headers and body go in separate writes; without this, Nagle and delayed ACKs stall
        # every keep-alive answer by 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/xml", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def do_POST(self):
        self.drain()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stub/open":
            self.stub.open()
            return self.answer(200, json.dumps(self.stub.stats()).encode(), "application/json")
        if path == "/_stub/reset":
            self.stub.reset()
            return self.answer(200, b"{}", "application/json")
        self.answer(405, error_xml("MethodNotAllowed", "only GET is served", path))

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        stub = self.stub
        if self.path.startswith("/_stub/"):
            return self.get()
        with stub.lock:
            stub.inflight += 1
            stub.max_inflight = max(stub.max_inflight, stub.inflight)
        try:
            self.get()
        finally:
            with stub.lock:
                stub.inflight -= 1

    def get(self):
        self.drain()
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        if path == "/_stub/stats":
            return self.answer(200, json.dumps(self.stub.stats()).encode(), "application/json")
        q = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        bucket, _, key = path.lstrip("/").partition("/")
        stub = self.stub
        if bucket != stub.bucket:
            return self.answer(404, error_xml("NoSuchBucket", "The specified bucket does not exist",
                                              bucket))
        if not key:
            body = stub.list_v2(q) if stub.opened_at is not None else stub_empty(stub, q)
            if body is None:
                return self.answer(400, error_xml("InvalidArgument", "bad max-keys", path))
            return self.answer(200, body)
        meta = stub.meta.get(key) if stub.opened_at is not None else None
        if meta is None:
            with stub.lock:
                stub.missing_gets += 1
            return self.answer(404, error_xml("NoSuchKey", "The specified key does not exist.", key))
        try:
            f = open(os.path.join(stub.root, key), "rb")
        except OSError:
            return self.answer(404, error_xml("NoSuchKey", "The specified key does not exist.", key))
        with f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", f'"{meta[2]}"')
            self.send_header("Last-Modified", email.utils.formatdate(meta[1], usegmt=True))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.flush()
            self.connection.sendfile(f)
        now = time.monotonic()
        with stub.lock:
            stub.get_requests += 1
            stub.gets[key] = stub.gets.get(key, 0) + 1
            if stub.first_get is None:
                stub.first_get = now
            stub.last_get = now


def stub_empty(stub, q):
    """The answer of a closed bucket: a valid, empty listing."""
    with stub.lock:
        stub.list_requests += 1
    prefix = q.get("prefix", [""])[0]
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}">'
            f"<Name>{escape(stub.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<MaxKeys>{PAGE_MAX}</MaxKeys><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
            "</ListBucketResult>").encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="the bucket's objects: files under this directory")
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--closed", action="store_true",
                    help="list nothing until POST /_stub/open")
    args = ap.parse_args()
    stub = Stub(args.root, args.bucket, opened=not args.closed)
    server = stub.serve(args.port, args.host)
    print(f"s3stub: serving {args.root} as s3://{args.bucket} on {args.host}:{args.port}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
