-- Shared by the sharing scripts. ARGV[1..4] name the policies hash, the active keys set, the
-- waiting keys sorted set and the prefix of each concurrency key K's own keys: <prefix>K:running
-- (set of job ids holding a slot), :parked (list, oldest first) and :state (hash: tokens and at of
-- its rate bucket, vt its virtual time in the round-robin). ARGV[5..7] name the fair queues' policies
-- hash, the fair jobs hash (job id -> queue) and the prefix of each fair queue Q's own keys:
-- <prefix>Q:inflight (set of its fair jobs let through) and :capacity (hash: worker -> "<processes>
-- <expiry>"). See trainq/store/keys.py.
local LIMITS, ACTIVE, WAITING, P = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local FAIR_QUEUES, FAIR_JOBS, FP = ARGV[5], ARGV[6], ARGV[7]
local UNIT_S = {s = 1, m = 60, h = 3600, d = 86400}

local function running(key) return P .. key .. ':running' end
local function parked(key) return P .. key .. ':parked' end
local function state(key) return P .. key .. ':state' end

local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local function policy(key)
  local raw = redis.call('HGET', LIMITS, key)
  if raw then return cjson.decode(raw) end
  return {}
end

local function has_slot(key, pol)
  return pol.max_running == nil or redis.call('SCARD', running(key)) < pol.max_running
end

-- A start up to one admission tick late (trainq.sharing.ticker.TICK_S) keeps its lateness as credit,
-- so ticks do not slow a rate down; an idle key gains no more than that.
local LATE_S = 0.1

-- The bucket's tokens now (capacity one, plus one tick's worth) and the seconds until a whole one.
local function tokens(key, pol, now)
  if pol.rate == nil then return 1, 0 end
  local count, unit = string.match(pol.rate, '^([%d%.]+)/([smhd])$')
  local per_s = tonumber(count) / UNIT_S[unit]
  local saved = redis.call('HMGET', state(key), 'tokens', 'at')
  local capacity = 1 + math.min(1, LATE_S * per_s)
  local held = math.min(capacity, (tonumber(saved[1]) or 1) + (now - (tonumber(saved[2]) or now)) * per_s)
  return held, math.max(0, (1 - held) / per_s)
end

local function inflight(queue) return FP .. queue .. ':inflight' end

-- A fair queue's window: its policy's ``window``, else the processes of the live workers consuming it,
-- or 1 while none counts itself: a pool scaled to zero then sees one job in the broker (an autoscaler
-- counting the broker's lists starts a worker), and the worker's own count takes over once it runs.
local function window(queue, now)
  local raw = redis.call('HGET', FAIR_QUEUES, queue)
  local pol = raw and cjson.decode(raw) or {}
  if pol.window then return pol.window end
  local total, entries = 0, redis.call('HGETALL', FP .. queue .. ':capacity')
  for i = 2, #entries, 2 do
    local processes, expiry = string.match(entries[i], '^(%d+) ([%d%.]+)$')
    if processes and tonumber(expiry) > now then total = total + tonumber(processes) end
  end
  return math.max(total, 1)
end

-- The fair queue ``job`` waits for if that queue's window is full (``closed`` remembers full queues
-- for the rest of the script: a window only fills while it runs), else nil.
local function shut_out(job, now, closed)
  local queue = redis.call('HGET', FAIR_JOBS, job)
  if not queue then return nil end
  if closed[queue] or redis.call('SCARD', inflight(queue)) >= window(queue, now) then
    closed[queue] = true
    return queue
  end
  return nil
end

-- Give ``job`` a slot of ``key`` (and of its fair queue's window): take a token, move the key's
-- turn on by 1/weight.
local function admit(key, pol, job, held, now)
  redis.call('SADD', running(key), job)
  local queue = redis.call('HGET', FAIR_JOBS, job)
  if queue then redis.call('SADD', inflight(queue), job) end
  local vt = tonumber(redis.call('HGET', state(key), 'vt')) or 0
  redis.call('HSET', state(key), 'vt', vt + 1 / (pol.weight or 1))
  if pol.rate ~= nil then redis.call('HSET', state(key), 'tokens', held - 1, 'at', now) end
end

-- Put ``key`` among the waiting keys if it has parked jobs and a free slot; a key that was away
-- rejoins at the turn of the earliest waiting key, so time away earns it no burst.
local function wake(key, pol)
  if redis.call('LLEN', parked(key)) == 0 or not has_slot(key, pol) then return end
  local vt = tonumber(redis.call('HGET', state(key), 'vt')) or 0
  local first = redis.call('ZRANGE', WAITING, 0, 0, 'WITHSCORES')
  if first[2] and tonumber(first[2]) > vt then vt = tonumber(first[2]) end
  redis.call('ZADD', WAITING, 'NX', vt, key)
end
