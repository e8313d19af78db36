-- wrk script for bench/run.mjs: POST /v1/decisions with a unique event id in every request.
--
-- Vigil is idempotent by event id (a repeated id returns the stored decision without new work),
-- so each request carries the id "<tag>-<thread>-<counter>", with fixed widths so that every body
-- has the same size. The tag must differ between wrk runs against the same server.
--
--   wrk -t1 -c50 -d10s -s bench/decision.lua http://127.0.0.1:PORT/v1/decisions -- \
--     <api key> <body template with @ID@> <tag> [<mean think time in ms, 0 = none>]
--
-- With a think time, each connection waits a random (exponential, whole milliseconds) time
-- before each request, which paces the load below saturation.
-- done() prints one line "BENCH_RESULT {json}" with the counts and latency percentiles in µs.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local head, tail, tag
local counter = 0

function init(args)
  local key, template = args[1], args[2]
  tag = args[3] or "t"
  local think = tonumber(args[4] or "0") or 0
  if key == nil or template == nil then
    error("usage: -- <api key> <body template with @ID@> <tag> [<think ms>]")
  end
  local at = template:find("@ID@", 1, true)
  if at == nil then
    error("the body template has no @ID@")
  end
  -- Format the request once with a placeholder id of the real width, then splice ids into it.
  local width = #string.format("%s-%02d-%09d", tag, thread_number, 0)
  local placeholder = string.rep("~", width)
  local body = template:sub(1, at - 1) .. placeholder .. template:sub(at + 4)
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  local request = wrk.format("POST", nil, nil, body)
  local from, to = request:find(placeholder, 1, true)
  head, tail = request:sub(1, from - 1), request:sub(to + 1)
  if think > 0 then
    math.randomseed(os.time() + thread_number * 7919)
    delay = function()
      return math.floor(-math.log(1 - math.random()) * think + 0.5)
    end
  end
end

function request()
  counter = counter + 1
  return head .. string.format("%s-%02d-%09d", tag, thread_number, counter) .. tail
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
