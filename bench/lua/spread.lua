-- wrk script: one-event ingests ("trips", RECORDS unset) or CloudTrail log files of RECORDS records
-- ("batches"), each record with a unique eventID, its key taken in turn from the KEYS_FILE list (one
-- access key id per line), so load spreads over a fleet of tokens as a real one would. Authorised
-- by the ingest secret in SECRET. Prints one BENCH line for bench/load.py to read.
local secret = os.getenv("SECRET")
-- Distinct per wrk process: two processes started in the same second (two replicas' loads)
-- must not send the same eventIDs, which would be repeats, not uses.
local run = os.getenv("RUN") or "0"
local records = tonumber(os.getenv("RECORDS") or "0")
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  if #line > 0 then keys[#keys + 1] = line end
end
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + tid)
  -- Threads start at different places in the list, so two threads do not walk it in step.
  counter = math.random(0, #keys - 1)
end

local function detail(key, id)
  return '{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accessKeyId":"' .. key .. '",'
    .. '"accountId":"123456789012","userName":"bench"},"eventTime":"2026-11-30T10:00:00Z",'
    .. '"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","awsRegion":"us-east-1",'
    .. '"sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15.0","eventID":"' .. id .. '",'
    .. '"eventType":"AwsApiCall","recipientAccountId":"123456789012"}'
end

function request()
  counter = counter + 1
  local base = string.format("l-%s-%d-%d-%d", run, tid, counter, math.random(1, 1000000000))
  local body
  if records == 0 then
    body = '{"version":"0","id":"' .. base .. '","detail-type":"AWS API Call via CloudTrail",'
      .. '"source":"aws.sts","account":"123456789012","time":"2026-11-30T10:00:00Z",'
      .. '"region":"us-east-1","detail":' .. detail(keys[counter % #keys + 1], base) .. '}'
  else
    local parts = {}
    for i = 1, records do
      parts[i] = detail(keys[(counter * records + i) % #keys + 1], base .. "-" .. i)
    end
    body = '{"Records":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "/ingest/v1/cloudtrail", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. secret,
  }, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "BENCH requests=%d errors=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
    summary.requests, errors, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
