-- wrk script for the full-policy run of bench/run.mjs: POST /v1/decisions with a unique event id
-- and varied keys (account, e-mail, IP, device, card) in every request, so that the features count
-- over a realistic spread of keys and the lists are asked about many values.
--
--   wrk -t1 -c50 -d10s -s bench/decision-keys.lua http://127.0.0.1:PORT/v1/decisions -- \
--     <api key> <body template> <tag> <think ms, 0 = none> <accounts> <bad share> <bad actors>
--
-- The template holds @ID@, @ACCOUNT@, @EMAIL@, @IP@, @DEVICE@ and @CARD@. Each is replaced by a
-- value of a fixed width, so every body has the same size. The formats are mirrored by `keys` in
-- bench/run.mjs, which builds the list entries and the sanity checks from the same indexes:
--
--   account n  acct-%010d          e-mail n  u%09d@example.com
--   device n   dev-%020d           card n    card-%012d
--   ip n       four octets 100..254, from (n * 48271) mod 155^4 in base 155
--
-- Per request, with <accounts> = A and I = A / 2 IP addresses in common use:
--   * normal (1 - <bad share>): account a uniform in [0, A); e-mail a; device a (90%) or another
--     device in [A, 2A) (10%); ip a mod I (80%: two accounts per address) or a random one (20%);
--     card a (95%) or the account's second card A + a (5%).
--   * half of <bad share>: a normal request from an address in 185.220.100.0/22 (blocked range).
--   * the other half: a known bad actor j in [0, <bad actors>): account and e-mail A + j, device
--     and card 2A + j; that device and e-mail are on the block list.
-- The think time and done() are those of bench/decision.lua, and done() also reports `degraded`:
-- the 200 answers whose body does not hold `"degraded":[]` (a decision made without some component,
-- for example rules cut off by the policy's CPU budget), counted by response().

local threads = {}
-- Per thread; global so that done() can read it with thread:get().
degraded = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local slots = { "ID", "ACCOUNT", "EMAIL", "IP", "DEVICE", "CARD" }
local parts = {}
local order = {}
local values = {}
local tag
local counter = 0
local accounts, ips, bad_share, bad_actors
local random, floor, format = math.random, math.floor, string.format

local function ip_of(n)
  local x = (n * 48271) % 577200625
  local a = x % 155
  x = floor(x / 155)
  local b = x % 155
  x = floor(x / 155)
  local c = x % 155
  local d = floor(x / 155)
  return format("%d.%d.%d.%d", 100 + d, 100 + c, 100 + b, 100 + a)
end

function init(args)
  local key, template = args[1], args[2]
  tag = args[3] or "t"
  local think = tonumber(args[4] or "0") or 0
  accounts = tonumber(args[5] or "")
  bad_share = tonumber(args[6] or "")
  bad_actors = tonumber(args[7] or "")
  if key == nil or template == nil or accounts == nil or bad_share == nil or bad_actors == nil then
    error("usage: -- <api key> <body template> <tag> <think ms> <accounts> <bad share> <bad actors>")
  end
  ips = floor(accounts / 2)
  local samples = {
    format("%s-%02d-%09d", tag, thread_number, 0),
    format("acct-%010d", 0),
    format("u%09d@example.com", 0),
    ip_of(0),
    format("dev-%020d", 0),
    format("card-%012d", 0),
  }
  -- Put a marker of the real width in place of each placeholder, format the request once, then cut
  -- it at the markers; request() joins the pieces with the values.
  local body = template
  for index, name in ipairs(slots) do
    local at = body:find("@" .. name .. "@", 1, true)
    if at == nil then
      error("the body template has no @" .. name .. "@")
    end
    body = body:sub(1, at - 1) .. string.rep(string.char(index), #samples[index]) .. body:sub(at + #name + 2)
  end
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  local request = wrk.format("POST", nil, nil, body)
  local found = {}
  for index = 1, #slots do
    local from, to = request:find(string.rep(string.char(index), #samples[index]), 1, true)
    table.insert(found, { from = from, to = to, slot = index })
  end
  table.sort(found, function(x, y) return x.from < y.from end)
  local position = 1
  for index, marker in ipairs(found) do
    parts[2 * index - 1] = request:sub(position, marker.from - 1)
    order[index] = marker.slot
    position = marker.to + 1
  end
  parts[2 * #found + 1] = request:sub(position)
  math.randomseed(os.time() + thread_number * 7919 + (tonumber(tag:match("%d+")) or 0) * 104729)
  if think > 0 then
    delay = function()
      return floor(-math.log(1 - random()) * think + 0.5)
    end
  end
end

function request()
  counter = counter + 1
  values[1] = format("%s-%02d-%09d", tag, thread_number, counter)
  local roll = random()
  local account, device, card, ip
  if roll < bad_share * 0.5 then
    account = random(0, accounts - 1)
    device, card = account, account
    ip = format("185.220.10%d.%d", random(0, 3), random(100, 254))
  elseif roll < bad_share then
    local actor = random(0, bad_actors - 1)
    account = accounts + actor
    device, card = 2 * accounts + actor, 2 * accounts + actor
    ip = ip_of(account % ips)
  else
    account = random(0, accounts - 1)
    device = random() < 0.9 and account or accounts + random(0, accounts - 1)
    card = random() < 0.95 and account or accounts + account
    ip = ip_of(random() < 0.8 and account % ips or ips + random(0, 999999))
  end
  values[2] = format("acct-%010d", account)
  values[3] = format("u%09d@example.com", account)
  values[4] = ip
  values[5] = format("dev-%020d", device)
  values[6] = format("card-%012d", card)
  for index = 1, #order do
    parts[2 * index] = values[order[index]]
  end
  return table.concat(parts)
end

function response(status, headers, body)
  if status == 200 and not body:find('"degraded":[]', 1, true) then
    degraded = degraded + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local degraded_total = 0
  for _, thread in ipairs(threads) do
    degraded_total = degraded_total + (thread:get("degraded") or 0)
  end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"degraded":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, degraded_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)
  ))
end
