-- Appended to every wrk script the harness runs: wrk calls done() once after the run, and this
-- prints one line the harness parses (bench/lib/wrk.ts). Latencies are in microseconds.
-- %.0f, not %d: LuaJIT numbers are doubles.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SYBENCH_JSON {"durationUs":%.0f,"requests":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latencyUs":{"min":%.0f,"mean":%.1f,"stdev":%.1f,"max":%.0f,' ..
    '"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
