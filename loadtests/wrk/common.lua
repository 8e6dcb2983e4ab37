-- Shared by every scenario: counts answers by kind in each thread, and prints one JSON
-- line of results at the end (read by loadtests/bench.py).
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

graphql_errors, busy, first_error = 0, 0, nil

function count(status, body)
  if body:find('"status":503', 1, true) then
    busy = busy + 1
  elseif status ~= 200 or body:find('"errors":[{', 1, true)
      or body:find('"status":4', 1, true) or body:find('"status":5', 1, true) then
    graphql_errors = graphql_errors + 1
    first_error = first_error or (status .. " " .. body:sub(1, 300))
  end
end

function done(summary, latency, requests)
  local errors, busy_total = 0, 0
  for _, thread in ipairs(threads) do
    errors = errors + (thread:get("graphql_errors") or 0)
    busy_total = busy_total + (thread:get("busy") or 0)
    local sample = thread:get("first_error")
    if sample then io.write("WRK_ERROR " .. sample:gsub("\n", " ") .. "\n") end
  end
  local socket = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"errors":%d,"busy":%d,"socket_errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errors, busy_total, socket, summary.errors.status))
end
