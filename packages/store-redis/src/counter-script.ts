/**
 * The Lua script behind `RedisCounterStore.apply`: every operation of one call (one event, or on
 * a cluster the operations of one entity) in one atomic script run. Time comes only from the
 * `at` argument and the buckets the client computed from it, never from Redis `TIME`, so a
 * window slides by the caller's clock (and tests can move time).
 *
 * KEYS[i]   the state key of operation i (its sub-keys append `:e` and `:h:<bucket>` and share
 *           its hash tag, so they live in the same cluster slot)
 * ARGV[1]   `at`, epoch ms
 * ARGV[2]   distinct values counted exactly per key before switching to HyperLogLog
 * ARGV[3]   buckets kept beyond the window before deletion (clock skew between nodes)
 * ARGV[4]   the event's key, or '' for none: when given, the script marks `<KEYS[1]>:u:<key>`
 *           (same slot) for ARGV[5] ms, and a call that finds the mark already set only reads.
 *           So a call retried after a timeout whose first attempt did run (a frozen server that
 *           woke up) does not count the event twice.
 * ARGV[5]   how long the mark lives, ms
 * then per operation four arguments:
 *   code    aggregation letter, upper case when the operation updates:
 *           c count, s sum, a avg, n min, x max, f first_seen, l last, d distinct,
 *           g last of strings (the value is kept and returned as it came)
 *   bucket  the bucket of `at` for the counter's window (floor(at / (window / 60)))
 *   ttl     window + one bucket, ms: the key's time to live after an update
 *   value   the number or distinct value as text ('' when none)
 *
 * Returns one reply per operation, in order: an integer (count, distinct), a number as text
 * formatted with 17 significant digits so a double survives exactly, or nil for no value.
 *
 * State per (counter, key):
 * - count, sum, min, max, first_seen: a hash of bucket -> value, fields older than the window
 *   (plus the skew allowance) deleted on update; avg adds fields `n<bucket>` with the counts.
 * - last (and last of strings): a hash {v = value, t = at, b = bucket of at}.
 * - distinct: a sorted set value -> newest bucket seen (exact mode); past the exact limit, one
 *   HyperLogLog per bucket at `<key>:h:<bucket>` and a hash `<key>:e` {l = newest bucket,
 *   o = oldest bucket of the cached estimate, c = cached estimate, n = adds since}.
 */
export const counterScript = `
local at = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local slack = tonumber(ARGV[3])
local fresh = true
if ARGV[4] ~= '' then
  fresh = redis.call('SET', KEYS[1] .. ':u:' .. ARGV[4], '1', 'NX', 'PX', ARGV[5]) ~= false
end
local results = {}

local function fmt(number)
  return string.format('%.17g', number)
end

local function hkey(key, bucket)
  return key .. ':h:' .. string.format('%d', bucket)
end

local function range(from, to, counts)
  local names = {}
  for b = from, to do
    names[#names + 1] = string.format('%d', b)
    if counts then names[#names + 1] = 'n' .. string.format('%d', b) end
  end
  return names
end

-- Most bucket fields a call reads or deletes by name; a longer range (a clock that jumped) is
-- handled by reading the whole hash instead.
local maxRange = 16

local function empty(kind)
  if kind == 'c' then return 0 end
  if kind == 's' then return fmt(0) end
  return false
end

-- count, sum, avg: bucket fields plus running totals t (and n, the count, for avg) over the
-- fields o..l, so a call reads a few fields, not the whole window.
local function additive(key, kind, update, field, bucket, ttl, value)
  local first = bucket - 60
  local counts = kind == 'a'
  local meta = redis.call('HMGET', key, 't', 'n', 'o', 'l', field, 'n' .. field)
  local total, count = tonumber(meta[1] or '0'), tonumber(meta[2] or '0')
  local oldest, latest = tonumber(meta[3] or ''), tonumber(meta[4] or '')
  if oldest ~= nil and update and (latest < first - slack or first - slack - oldest > maxRange or bucket - latest > 60) then
    -- Everything (or a range too long to delete by name) left the window: rebuild from the
    -- fields still inside it.
    local fields = redis.call('HGETALL', key)
    redis.call('DEL', key)
    total, count, oldest, latest = 0, 0, nil, nil
    local keep = {}
    for i = 1, #fields, 2 do
      local name = fields[i]
      local b = tonumber(name)
      local isCount = false
      if b == nil then
        b = tonumber(string.sub(name, 2))
        isCount = true
      end
      if b ~= nil and b >= first - slack then
        keep[#keep + 1] = name
        keep[#keep + 1] = fields[i + 1]
        if isCount then count = count + tonumber(fields[i + 1]) else total = total + tonumber(fields[i + 1]) end
        if oldest == nil or b < oldest then oldest = b end
        if latest == nil or b > latest then latest = b end
      end
    end
    if #keep > 0 then redis.call('HSET', key, unpack(keep)) end
    meta[5] = redis.call('HGET', key, field)
    meta[6] = redis.call('HGET', key, 'n' .. field)
  elseif oldest ~= nil and update and oldest < first - slack then
    local names = range(oldest, first - slack - 1, counts)
    local values = redis.call('HMGET', key, unpack(names))
    for i = 1, #names do
      if values[i] then
        if counts and i % 2 == 0 then count = count - tonumber(values[i]) else total = total - tonumber(values[i]) end
      end
    end
    redis.call('HDEL', key, unpack(names))
    oldest = first - slack
  end
  if update and (oldest == nil or bucket >= oldest) then
    -- An update older than the oldest bucket kept (a clock step back) is too old to count.
    local amount = value
    if kind == 'c' then amount = 1 end
    total = total + amount
    local writes = { field, fmt(tonumber(meta[5] or '0') + amount), 't', fmt(total) }
    if counts then
      count = count + 1
      writes[5], writes[6], writes[7], writes[8] = 'n' .. field, tonumber(meta[6] or '0') + 1, 'n', count
    end
    if oldest == nil or bucket < oldest then oldest = bucket end
    if latest == nil or bucket > latest then latest = bucket end
    writes[#writes + 1] = 'o'
    writes[#writes + 1] = string.format('%d', oldest)
    writes[#writes + 1] = 'l'
    writes[#writes + 1] = string.format('%d', latest)
    redis.call('HSET', key, unpack(writes))
    redis.call('PEXPIRE', key, ttl)
  end
  if oldest == nil or latest < first then return empty(kind) end
  -- The totals cover oldest..latest; the window is first..bucket.
  local outside = {}
  if oldest < first then outside = range(oldest, first - 1, counts) end
  if latest > bucket then
    for _, name in ipairs(range(math.max(bucket + 1, oldest), latest, counts)) do outside[#outside + 1] = name end
  end
  if #outside > 2 * maxRange then
    local fields = redis.call('HGETALL', key)
    total, count = 0, 0
    for i = 1, #fields, 2 do
      local name = fields[i]
      local b = tonumber(name)
      local isCount = false
      if b == nil then
        b = tonumber(string.sub(name, 2))
        isCount = true
      end
      if b ~= nil and b >= first and b <= bucket then
        if isCount then count = count + tonumber(fields[i + 1]) else total = total + tonumber(fields[i + 1]) end
      end
    end
  elseif #outside > 0 then
    local values = redis.call('HMGET', key, unpack(outside))
    for i = 1, #outside do
      if values[i] then
        if counts and i % 2 == 0 then count = count - tonumber(values[i]) else total = total - tonumber(values[i]) end
      end
    end
  end
  if kind == 'c' then return total end
  if kind == 's' then return fmt(total) end
  if count == 0 then return false end
  return fmt(total / count)
end

-- min, max, first_seen: bucket fields plus a cached best m (in bucket mb) over the fields from
-- bucket w on; the cache is rebuilt from the window's fields only when its best leaves it.
local function extreme(key, kind, update, field, bucket, ttl, value)
  local first = bucket - 60
  local meta = redis.call('HMGET', key, 'm', 'mb', 'w', 'o', field)
  local best, bestBucket = tonumber(meta[1] or ''), tonumber(meta[2] or '')
  local from, oldest = tonumber(meta[3] or ''), tonumber(meta[4] or '')
  local function better(a, b)
    if kind == 'x' then return a > b end
    return a < b
  end
  if update then
    local sample = value
    if kind == 'f' then sample = at end
    local old = tonumber(meta[5] or '')
    local writes = {}
    if old == nil or better(sample, old) then
      writes[#writes + 1] = field
      writes[#writes + 1] = fmt(sample)
    end
    if best == nil or not better(best, sample) then
      -- The new sample is at least as good as the cached best over buckets w.., so it is that best.
      if best == nil or better(sample, best) or bucket > bestBucket then
        best, bestBucket = sample, bucket
        writes[#writes + 1] = 'm'
        writes[#writes + 1] = fmt(sample)
        writes[#writes + 1] = 'mb'
        writes[#writes + 1] = field
      end
    end
    if from == nil then
      from = first
      writes[#writes + 1] = 'w'
      writes[#writes + 1] = string.format('%d', first)
    end
    if oldest == nil or bucket < oldest then
      oldest = bucket
      writes[#writes + 1] = 'o'
      writes[#writes + 1] = field
    elseif oldest < first - slack then
      local stale = {}
      if first - slack - oldest <= maxRange then
        stale = range(oldest, first - slack - 1, false)
      else
        for _, name in ipairs(redis.call('HKEYS', key)) do
          local b = tonumber(name)
          if b ~= nil and b < first - slack then stale[#stale + 1] = name end
        end
      end
      if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
      oldest = first - slack
      writes[#writes + 1] = 'o'
      writes[#writes + 1] = string.format('%d', oldest)
    end
    if #writes > 0 then redis.call('HSET', key, unpack(writes)) end
    redis.call('PEXPIRE', key, ttl)
  end
  if best ~= nil and from <= first and bestBucket >= first and bestBucket <= bucket then
    if kind == 'f' then return fmt(math.max(0, at - best) / 1000) end
    return fmt(best)
  end
  if from == nil and best == nil and oldest == nil then return false end
  -- Rebuild the cache from the window's fields; delete fields past the skew allowance.
  local fields = redis.call('HGETALL', key)
  best, bestBucket = nil, nil
  local stale = {}
  for i = 1, #fields, 2 do
    local b = tonumber(fields[i])
    if b ~= nil and string.len(fields[i]) > 0 and string.sub(fields[i], 1, 1) ~= 'm' then
      if b < first - slack then
        stale[#stale + 1] = fields[i]
      elseif b >= first and b <= bucket then
        local v = tonumber(fields[i + 1])
        if best == nil or better(v, best) or (v == best and b > bestBucket) then best, bestBucket = v, b end
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  if best == nil then
    redis.call('HDEL', key, 'm', 'mb')
    redis.call('HSET', key, 'w', string.format('%d', first))
    return false
  end
  redis.call('HSET', key, 'm', fmt(best), 'mb', string.format('%d', bestBucket), 'w', string.format('%d', first))
  if kind == 'f' then return fmt(math.max(0, at - best) / 1000) end
  return fmt(best)
end

-- value: the text to keep (a number already formatted, or a string as it came).
local function last(key, update, field, bucket, ttl, value)
  if update then
    local t = tonumber(redis.call('HGET', key, 't') or '')
    if t == nil or at >= t then
      redis.call('HSET', key, 'v', value, 't', fmt(at), 'b', field)
    end
    redis.call('PEXPIRE', key, ttl)
  end
  local state = redis.call('HMGET', key, 'v', 'b')
  local b = tonumber(state[2] or '')
  if b == nil or b < bucket - 60 then return false end
  return state[1]
end

local function distinct(key, update, bucket, ttl, value)
  local first = bucket - 60
  local ekey = key .. ':e'
  local state = redis.call('HMGET', ekey, 'l', 'o', 'c', 'n')
  local latest = tonumber(state[1] or '')
  if latest ~= nil and latest < first then
    -- Idle for a whole window: start afresh, exactly (the old HyperLogLogs expire by TTL).
    redis.call('DEL', ekey)
    latest = nil
  end
  if latest == nil then
    if update then
      redis.call('ZADD', key, 'GT', bucket, value)
      redis.call('PEXPIRE', key, ttl)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', first - slack))
    end
    local exact = redis.call('ZCOUNT', key, first, '+inf')
    if not update or exact <= limit then return exact end
    -- Past the exact limit: move the window's values into per-bucket HyperLogLogs.
    local members = redis.call('ZRANGEBYSCORE', key, first, '+inf', 'WITHSCORES')
    for i = 1, #members, 2 do
      local h = hkey(key, tonumber(members[i + 1]))
      redis.call('PFADD', h, members[i])
      redis.call('PEXPIRE', h, ttl)
    end
    redis.call('DEL', key)
    redis.call('HSET', ekey, 'l', bucket, 'o', '', 'c', 0, 'n', 0)
    redis.call('PEXPIRE', ekey, ttl)
    latest = bucket
    state = { bucket, '', '0', '0' }
  elseif update then
    local h = hkey(key, bucket)
    redis.call('PFADD', h, value)
    redis.call('PEXPIRE', h, ttl)
    redis.call('HINCRBY', ekey, 'n', 1)
    state[4] = tonumber(state[4] or '0') + 1
    if bucket > latest then redis.call('HSET', ekey, 'l', bucket) end
    redis.call('PEXPIRE', ekey, ttl)
  end
  -- A full estimate merges up to 61 HyperLogLogs, so it is reused within a bucket plus one per
  -- value added since, and redone after 1% growth (as the in-process sliding HyperLogLog).
  local cached = tonumber(state[3] or '0')
  local adds = tonumber(state[4] or '0')
  if tonumber(state[2] or '') == first and adds <= math.max(8, cached / 100) then
    return cached + adds
  end
  local keys = {}
  for b = first, bucket do keys[#keys + 1] = hkey(key, b) end
  local estimate = redis.call('PFCOUNT', unpack(keys))
  redis.call('HSET', ekey, 'o', string.format('%d', first), 'c', estimate, 'n', 0)
  return estimate
end

for i = 1, #KEYS do
  local base = 4 * i + 2
  local code = ARGV[base]
  local kind = string.lower(code)
  local update = fresh and kind ~= code
  local field = ARGV[base + 1]
  local bucket = tonumber(field)
  local ttl = ARGV[base + 2]
  local value = ARGV[base + 3]
  local result
  if kind == 'd' then
    result = distinct(KEYS[i], update, bucket, ttl, value)
  elseif kind == 'l' then
    result = last(KEYS[i], update, field, bucket, ttl, update and fmt(tonumber(value)) or '')
  elseif kind == 'g' then
    result = last(KEYS[i], update, field, bucket, ttl, value)
  elseif kind == 'c' or kind == 's' or kind == 'a' then
    result = additive(KEYS[i], kind, update, field, bucket, ttl, tonumber(value))
  else
    result = extreme(KEYS[i], kind, update, field, bucket, ttl, tonumber(value))
  end
  results[i] = result
end
return results
`;

/** The letter of each aggregation in the script's operation code. */
export const aggregationCodes = {
  count: 'c',
  sum: 's',
  avg: 'a',
  min: 'n',
  max: 'x',
  first_seen: 'f',
  last: 'l',
  distinct: 'd',
} as const;

/** The letter of `last` over strings (`CounterSpec.valueType: 'string'`). */
export const lastStringCode = 'g';
