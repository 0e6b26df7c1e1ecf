-- One script for every wrk run of the benchmarks, driven by environment variables:
-- BENCH_BODIES   a file of form bodies, one a line: POST each once (split by thread)
-- BENCH_HEADERS  extra headers, "Name: value" separated by "|"
-- BENCH_EXPECT   a string every answer's body must contain (else counted as bad)
-- BENCH_DELAY_MS pause of each connection between requests (paced load)
-- done() prints one JSON line: requests, errors, bad answers, latency percentiles.

-- BENCH_SKIP     bodies an earlier run posted already (skipped)
-- BENCH_THREADS  wrk's -t (each thread posts every BENCH_THREADS-th body)

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local bodies = nil
local next_body = 0
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local expect = os.getenv("BENCH_EXPECT") or ""
bad = 0
reused = 0

function init(args)
  local headers = os.getenv("BENCH_HEADERS") or ""
  for pair in string.gmatch(headers, "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  local path = os.getenv("BENCH_BODIES")
  if path and path ~= "" then
    bodies = {}
    local n = 0
    local step = tonumber(os.getenv("BENCH_THREADS") or "1")
    local skip = tonumber(os.getenv("BENCH_SKIP") or "0")
    for line in io.lines(path) do
      if n >= skip and n % step == id then table.insert(bodies, line) end
      n = n + 1
    end
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

function request()
  if bodies then
    next_body = next_body + 1
    if next_body > #bodies then
      next_body = 1
      reused = reused + 1
    end
    return wrk.format(nil, nil, nil, bodies[next_body])
  end
  return wrk.format()
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function response(status, headers, body)
  if status ~= 200 or (expect ~= "" and not string.find(body, expect, 1, true)) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total, reused_total = 0, 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    reused_total = reused_total + (t:get("reused") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "socket_errors": %d, ' ..
    '"status_errors": %d, "bad": %d, "reused": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, bad_total, reused_total, latency:percentile(50),
    latency:percentile(95), latency:percentile(99)))
end
