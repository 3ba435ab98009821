#!/usr/bin/env python3
"""The organisation trail that bench/firehose.py reads: trail files generated from real records of
testdata/cloudtrail/events with their ids varied, and the decoy records written per repeat.
Python standard library only."""
import glob, gzip, json, multiprocessing, os, random, re, string, sys, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "testdata", "cloudtrail", "events")
REGION = "us-east-1"
DAY = "2026/12/05"
B32 = string.ascii_uppercase + "234567"
ALNUM = string.ascii_letters + string.digits
# Identity types of the records, and their share.
MIX = (("IAMUser", 40), ("AssumedRole", 45), ("AWSService", 10), (None, 5))
# What a stolen key is first used for.
RECON = (("sts.amazonaws.com", "GetCallerIdentity"), ("s3.amazonaws.com", "ListBuckets"),
         ("iam.amazonaws.com", "ListUsers"), ("ec2.amazonaws.com", "DescribeInstances"),
         ("iam.amazonaws.com", "GetAccountAuthorizationDetails"))

# ---------------------------------------------------------------- data

def template(r):
    """A record as a %-format string with its ids as fields, and which key pool it draws from."""
    r = json.loads(json.dumps(r))
    acct = r.get("recipientAccountId") or "123837392027"
    ui = r.get("userIdentity") or {}
    key = ui.get("accessKeyId") or ""
    pool = "asia" if key.startswith("ASIA") else "akia" if key.startswith("AKIA") else None
    if pool:
        ui["accessKeyId"] = "@@KEY@@"
    r["eventID"] = "@@EVID@@"
    r["eventTime"] = "@@TIME@@"
    req = r.get("requestID")
    req_kind = None
    if isinstance(req, str) and req:
        req_kind = "uuid" if re.fullmatch(r"[0-9a-f-]{36}", req) else len(req)
        r["requestID"] = "@@REQ@@"
    ip = r.get("sourceIPAddress")
    if isinstance(ip, str) and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip):
        r["sourceIPAddress"] = "@@IP@@"
    s = json.dumps(r, separators=(",", ":")).replace("%", "%%")
    s = re.sub(r"20\d\d-\d\d-\d\dT", DAY.replace("/", "-") + "T", s).replace(acct, "%(acct)s")
    for field in ("KEY", "EVID", "TIME", "REQ", "IP"):
        s = s.replace(f"@@{field}@@", f"%({field.lower()})s")
    return s, pool, req_kind


def load_templates():
    by_type = {t: [] for t, _ in MIX}
    for path in sorted(glob.glob(os.path.join(CORPUS, "invictus-sigma-aws__*.json"))):
        with open(path) as f:
            for r in json.load(f)["Records"]:
                t = (r.get("userIdentity") or {}).get("type")
                if t in by_type:
                    by_type[t].append(template(r))
    if not all(by_type.values()):
        sys.exit(f"firehose.py: no record templates under {CORPUS}")
    return by_type


def rand(rng, alphabet, n):
    return "".join(rng.choices(alphabet, k=n))


# Read by the generating processes (forked, so set before the pool starts).
G = {}


def gen_file(spec):
    """Writes one trail file; a file holding decoy slots is returned as text instead (written per
    repeat, with that repeat's keys)."""
    idx, key, acct_i, hhmm, n, decoys = spec
    rng = random.Random(G["seed"] * 1_000_003 + idx)
    acct, pool = G["accounts"][acct_i], G["pools"][acct_i]
    kinds, cum = G["kinds"], G["cum"]
    by_type = G["by_type"]
    end = int(hhmm[:2]) * 3600 + int(hhmm[2:]) * 60
    slots = dict(decoys)
    parts = []
    for i in range(n):
        if i in slots:
            parts.append(f'"@@DECOY-{slots[i]}@@"')
            continue
        fmt, kp, req_kind = rng.choice(by_type[rng.choices(kinds, cum_weights=cum)[0]])
        t = max(0, end - 1 - rng.randrange(300))
        parts.append(fmt % {
            "acct": acct,
            "key": rng.choice(pool[kp]) if kp else "",
            "evid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "time": f"{DAY.replace('/', '-')}T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}Z",
            "req": (str(uuid.UUID(int=rng.getrandbits(128), version=4)) if req_kind == "uuid"
                    else rand(rng, string.ascii_uppercase + string.digits, req_kind or 16)),
            "ip": rng.choice(pool["ips"]),
        })
    text = '{"Records":[' + ",".join(parts) + "]}"
    if slots:
        return key, n, text, len(text)
    path = os.path.join(G["root"], key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(text.encode(), 6))
    return key, n, None, len(text)


def generate(root, args):
    """Writes every file without decoys; returns the layout and the decoy files' texts."""
    rng = random.Random(args.seed)
    org = "o-" + rand(rng, string.ascii_lowercase + string.digits, 10)
    accounts = set()
    while len(accounts) < args.accounts:
        accounts.add(f"{rng.randrange(10**11, 10**12):012d}")
    accounts = sorted(accounts)
    pools = [{"akia": ["AKIA" + rand(rng, B32, 16) for _ in range(6)],
              "asia": ["ASIA" + rand(rng, B32, 16) for _ in range(30)],
              "ips": [f"{rng.choice([3, 18, 34, 52, 54, 198, 203])}.{rng.randrange(256)}."
                      f"{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(8)]}
             for _ in accounts]
    nfiles = -(-args.records // args.per_file)
    ndecoy = max(1, args.records // 10_000) if args.decoys else 0
    slots = {}
    for j, g in enumerate(sorted(rng.sample(range(args.records), ndecoy))):
        slots.setdefault(g // args.per_file, []).append((g % args.per_file, j))
    specs, used = [], {}
    for i in range(nfiles):
        a = i % len(accounts)
        taken = used.setdefault(a, set())
        while True:
            hhmm = rng.randrange(288) * 5
            if hhmm not in taken or len(taken) >= 288:
                break
        taken.add(hhmm)
        hhmm = f"{hhmm // 60:02d}{hhmm % 60:02d}"
        acct = accounts[a]
        key = (f"AWSLogs/{org}/{acct}/CloudTrail/{REGION}/{DAY}/{acct}_CloudTrail_{REGION}_"
               f"{DAY.replace('/', '')}T{hhmm}Z_{rand(rng, ALNUM, 16)}.json.gz")
        n = min(args.per_file, args.records - i * args.per_file)
        specs.append((i, key, a, hhmm, n, tuple(slots.get(i, ()))))
    by_type = load_templates()
    kinds = [t for t, _ in MIX]
    cum, c = [], 0
    for _, w in MIX:
        c += w
        cum.append(c)
    G.update(seed=args.seed, accounts=accounts, pools=pools, kinds=kinds, cum=cum,
             by_type=by_type, root=root)
    ctx = multiprocessing.get_context("fork")
    out = []
    with ctx.Pool(os.cpu_count() or 1) as pool:
        out = list(pool.imap_unordered(gen_file, specs, chunksize=16))
    decoy_files = []
    for key, n, text, _ in out:
        if text is not None:
            hhmm = re.search(r"T(\d{4})Z_", key).group(1)
            js = [int(m) for m in re.findall(r'"@@DECOY-(\d+)@@"', text)]
            decoy_files.append((key, text, [(j, hhmm) for j in js]))
    last = {}
    for _, key, *_ in specs:
        leaf = key[:key.index(f"/{REGION}/") + len(REGION) + 2]
        last[leaf] = max(last.get(leaf, ""), key)
    return dict(org=org, keys=sorted(s[1] for s in specs), last=last, decoy_files=decoy_files,
                ndecoy=ndecoy, json_bytes=sum(o[3] for o in out))


def write_decoys(root, decoy_files, tokens, seed):
    """Writes the files holding decoy records, naming this repeat's tokens; returns
    {eventID: access key id} of the decoy records."""
    rng = random.Random(seed)
    expected = {}
    for key, text, slots in decoy_files:
        for j, hhmm in slots:
            tok = tokens[j % len(tokens)]
            acct, user = tok["account_id"], tok["username"]
            source, name = RECON[j % len(RECON)]
            evid = str(uuid.uuid4())
            expected[evid] = tok["access_key_id"]
            t = int(hhmm[:2]) * 3600 + int(hhmm[2:]) * 60 - 1 - rng.randrange(300)
            t = max(t, 0)
            rec = {
                "eventVersion": "1.08",
                "userIdentity": {"type": "IAMUser", "principalId": "AIDA" + rand(rng, B32, 17),
                                 "arn": f"arn:aws:iam::{acct}:user/{user}", "accountId": acct,
                                 "accessKeyId": tok["access_key_id"], "userName": user},
                "eventTime": f"{DAY.replace('/', '-')}T{t // 3600:02d}:{t // 60 % 60:02d}:"
                             f"{t % 60:02d}Z",
                "eventSource": source, "eventName": name, "awsRegion": REGION,
                "sourceIPAddress": f"185.220.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.kali.2024 "
                             f"prompt/off command/{source.split('.')[0]}.{name.lower()}",
                "requestParameters": None, "responseElements": None,
                "requestID": str(uuid.uuid4()), "eventID": evid, "readOnly": True,
                "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": acct,
                "eventCategory": "Management",
                "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                               "clientProvidedHostHeader": f"{source.split('.')[0]}.amazonaws.com"},
            }
            text = text.replace(f'"@@DECOY-{j}@@"', json.dumps(rec, separators=(",", ":")), 1)
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(gzip.compress(text.encode(), 6))
    return expected
