-- wrk script: GET the paths listed in a file, in order, round and round.
-- wrk -s bench/wrk_get.lua URL -- TOKEN PATHS_FILE
-- Prints one JSON line at the end: requests, duration, failures, latency percentiles (µs).

local paths = {}
local next_path = 0

function init(args)
  headers = { ["Authorization"] = "Bearer " .. args[1] }
  for line in io.lines(args[2]) do
    if line ~= "" then table.insert(paths, line) end
  end
end

request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], headers)
end

function done(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"failed":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, failed,
    latency:percentile(50), latency:percentile(99)))
end
