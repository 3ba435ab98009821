-- wrk script: one EventBridge "AWS API Call via CloudTrail" event per request, each with a
-- unique eventID, for the key in the KEY environment variable, authorised by the ingest secret.
local key = os.getenv("KEY")
local secret = os.getenv("SECRET")
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + tid)
end

function request()
  counter = counter + 1
  local id = string.format("bench-%d-%d-%d", tid, counter, math.random(1, 1000000000))
  local body = '{"version":"0","id":"' .. id .. '","detail-type":"AWS API Call via CloudTrail",'
    .. '"source":"aws.sts","account":"123456789012","time":"2026-11-30T10:00:00Z","region":"us-east-1",'
    .. '"detail":{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accessKeyId":"' .. key .. '",'
    .. '"accountId":"123456789012","userName":"bench"},"eventTime":"2026-11-30T10:00:00Z",'
    .. '"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","awsRegion":"us-east-1",'
    .. '"sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.0","eventID":"' .. id .. '",'
    .. '"eventType":"AwsApiCall","recipientAccountId":"123456789012"}}'
  return wrk.format("POST", "/ingest/v1/cloudtrail", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. secret,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("BENCH rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
