-- KEYS: job hash, events list, leases zset.
-- ARGV: id, fence ('' = any), allowed states (comma list), new state, fields (JSON object of
--       JSON-encoded values; 'null' removes the field), event JSON ('' = none), state index prefix, lease ('' keep,
--       '0' drop, else expiry).
--       ARGV[9]: per-queue stats prefix, ARGV[10]: per-type stats prefix,
--       ARGV[11]: '1' to fill the event's attempt from the record and return the record.
--       ARGV[12]: finished-jobs prefix; ARGV[13]: the time now when the new state is finished
--       ('' otherwise): a standalone job enters the retention set of its state, leaving any other.
-- Returns the state the job was in (or the record), or false when the change was refused.
local raw = redis.call('HGET', KEYS[1], 'state')
if not raw then return false end
local cur = cjson.decode(raw)
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return false end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then return false end
for k, v in pairs(cjson.decode(ARGV[5])) do
  if v == 'null' then redis.call('HDEL', KEYS[1], k) else redis.call('HSET', KEYS[1], k, v) end
end
local new = ARGV[4]
if new ~= cur then
  local created = redis.call('HGET', KEYS[1], 'created_at')
  redis.call('ZREM', ARGV[7] .. cur, ARGV[1])
  redis.call('ZADD', ARGV[7] .. new, created, ARGV[1])
  redis.call('HSET', KEYS[1], 'state', cjson.encode(new))
  local queue = ARGV[9] .. cjson.decode(redis.call('HGET', KEYS[1], 'queue'))
  redis.call('HINCRBY', queue, cur, -1)
  redis.call('HINCRBY', queue, new, 1)
  local kind = ARGV[10] .. cjson.decode(redis.call('HGET', KEYS[1], 'type'))
  redis.call('HINCRBY', kind, cur, -1)
  redis.call('HINCRBY', kind, new, 1)
  redis.call('ZREM', ARGV[12] .. cur, ARGV[1])
  local run = redis.call('HGET', KEYS[1], 'pipeline_id')
  if ARGV[13] ~= '' and (not run or run == 'null') then
    redis.call('ZADD', ARGV[12] .. new, ARGV[13], ARGV[1])
  end
end
local event = ARGV[6]
if ARGV[11] == '1' then
  event = (string.gsub(event, '"attempt":%-1', '"attempt":' .. redis.call('HGET', KEYS[1], 'attempt'), 1))
end
if event ~= '' then redis.call('RPUSH', KEYS[2], event) end
if ARGV[8] == '0' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
end
if ARGV[11] == '1' then return redis.call('HGETALL', KEYS[1]) end
return cur
