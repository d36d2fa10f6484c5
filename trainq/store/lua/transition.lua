-- One job's state change, with the run scripts' functions (run_common, run_succeeded, run_failed)
-- loaded before it so a finish can move its pipeline run in the same call.
-- KEYS: job hash, events list, leases zset.
-- ARGV: id, fence ('' = any), allowed states (comma list), new state, fields (JSON object of
--       JSON-encoded values; 'null' removes the field), event JSON ('' = none), state index prefix, lease ('' keep,
--       '0' drop, else expiry).
--       ARGV[9]: the counters hash (field: the JSON array [queue, type, state], built from the
--       record's JSON-encoded queue and type), ARGV[10]: unused (kept so the later ones keep their numbers),
--       ARGV[11]: '1' to fill the event's attempt from the record and return the record.
--       ARGV[12]: finished-jobs prefix; ARGV[13]: '1' when the new state is finished ('' otherwise):
--       a standalone job then enters its state's retention set instead of its state index.
--       ARGV[14]: the finished states (comma list: only a job leaving one is in a retention set).
--       ARGV[15]: effects ('' = none): a JSON list of writes applied only if the change is, each
--       a Redis command, or {run function name, keys, args} for a pipeline run's step.
-- A clean run keeps no events: a success on attempt 1 with no failure or recovery whose events are
-- exactly queued (submitted, at creation), running (at the start, attempt 1, its worker) and this
-- one (at the finish, same worker) drops its list; readers build them from the record
-- (trainq.job.record.clean_run_events).
-- Returns the state the job was in (or the record; or, with effects, {state, their replies}),
-- or false when the change was refused.
local cur, fence, created, queue, kind, run, attempt, failures, recoveries, started, worker = unpack(
  redis.call('HMGET', KEYS[1], 'state', 'fence', 'created_at', 'queue', 'type', 'pipeline_id', 'attempt',
    'failures', 'recoveries', 'started_at', 'worker'))
if not cur then return false end
cur = cjson.decode(cur)
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return false end
if ARGV[2] ~= '' and fence ~= ARGV[2] then return false end
local new = ARGV[4]
local values, fields = {}, cjson.decode(ARGV[5])
for k, v in pairs(fields) do
  if v == 'null' then
    redis.call('HDEL', KEYS[1], k)
  else
    values[#values + 1] = k
    values[#values + 1] = v
  end
end
if new ~= cur then
  values[#values + 1] = 'state'
  values[#values + 1] = cjson.encode(new)
end
if #values > 0 then redis.call('HSET', KEYS[1], unpack(values)) end
if new ~= cur then
  redis.call('ZREM', ARGV[7] .. cur, ARGV[1])
  if ARGV[13] ~= '' and (not run or run == 'null') then
    redis.call('ZADD', ARGV[12] .. new, created, ARGV[1])
  else
    redis.call('ZADD', ARGV[7] .. new, created, ARGV[1])
  end
  local route = '[' .. queue .. ',' .. kind .. ',"'
  redis.call('HINCRBY', ARGV[9], route .. cur .. '"]', -1)
  redis.call('HINCRBY', ARGV[9], route .. new .. '"]', 1)
  if string.find(',' .. ARGV[14] .. ',', ',' .. cur .. ',', 1, true) then
    redis.call('ZREM', ARGV[12] .. cur, ARGV[1])
  end
end
local function none(v) return v == nil or v == cjson.null end
-- True when the events so far and ``event`` are those of a clean run.
local function clean(event)
  if new ~= 'succeeded' or attempt ~= '1' then return false end
  if (failures and failures ~= '0') or (recoveries and recoveries ~= '0') then return false end
  for _, name in ipairs({'attempt', 'failures', 'recoveries', 'started_at', 'worker'}) do
    if fields[name] then return false end
  end
  local finished = fields.finished_at
  if not (started and finished and worker) then return false end
  local list = redis.call('LRANGE', KEYS[2], 0, 2)
  if #list ~= 2 then return false end
  local q, r, s, on = cjson.decode(list[1]), cjson.decode(list[2]), cjson.decode(event), cjson.decode(worker)
  return q.state == 'queued' and q.reason == 'submitted' and q.at == tonumber(created)
    and (none(q.attempt) or q.attempt == 0) and none(q.worker)
    and r.state == 'running' and r.at == tonumber(started) and r.attempt == 1
    and r.worker == on and none(r.reason)
    and s.state == 'succeeded' and s.at == tonumber(finished) and s.attempt == 1
    and s.worker == on and none(s.reason)
end
local event = ARGV[6]
if ARGV[11] == '1' then
  event = (string.gsub(event, '"attempt":%-1', '"attempt":' .. attempt, 1))
end
if event ~= '' then
  if clean(event) then
    redis.call('DEL', KEYS[2])
  else
    redis.call('RPUSH', KEYS[2], event)
  end
end
if ARGV[8] == '0' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
end
if ARGV[11] == '1' then return redis.call('HGETALL', KEYS[1]) end
if ARGV[15] == '' then return cur end
local steps, replies = {run_succeeded = run_succeeded, run_failed = run_failed}, {}
for i, effect in ipairs(cjson.decode(ARGV[15])) do
  local step = steps[effect[1]]
  if step then replies[i] = step(effect[2], effect[3]) else replies[i] = redis.call(unpack(effect)) end
end
return {cur, replies}
