-- wrk script: a CloudTrail log file {"Records":[…]} of RECORDS records per request (default
-- 1,000), every record using the key in KEY, each with a unique eventID.
local key = os.getenv("KEY")
local secret = os.getenv("SECRET")
local n = tonumber(os.getenv("RECORDS") or "1000")
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
  local base = string.format("b-%d-%d-%d", tid, counter, math.random(1, 1000000000))
  local parts = {}
  for i = 1, n do
    parts[i] = '{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accessKeyId":"' .. key
      .. '","accountId":"123456789012","userName":"bench"},"eventTime":"2026-11-30T10:00:00Z",'
      .. '"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","awsRegion":"us-east-1",'
      .. '"sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.0","eventID":"' .. base .. '-' .. i
      .. '","eventType":"AwsApiCall","recipientAccountId":"123456789012"}'
  end
  return wrk.format("POST", "/ingest/v1/cloudtrail", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. secret,
  }, '{"Records":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("BENCH rps=%.1f events_per_s=%.0f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f requests=%d errors=%d\n",
    summary.requests / secs, summary.requests * n / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
