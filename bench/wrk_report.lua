-- Shared by the wrk scripts (loaded with dofile): at the end, one JSON line with the request
-- count, duration, failures and latency percentiles (µs).

function done(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"failed":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, failed,
    latency:percentile(50), latency:percentile(99)))
end
