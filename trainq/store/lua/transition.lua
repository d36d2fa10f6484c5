-- One job's state change, with the run scripts' functions (run_common, run_succeeded, run_failed)
-- loaded before it so a finish can move its pipeline run in the same call.
-- KEYS: job hash, events list, leases zset.
-- ARGV: id, fence ('' = any), allowed states (comma list), new state, fields (JSON object of
--       JSON-encoded values; 'null' removes the field), event JSON ('' = none), state index prefix, lease ('' keep,
--       '0' drop, else expiry).
--       ARGV[9]: the counters hash (field: the JSON array [queue, type, state], built from the
--       record's JSON-encoded queue and type),
--       ARGV[10]: '1' for a claim: fill the event's attempt from the record and return the record (one
--       JSON object of its fields: each stored value is JSON already). A claim sent again after its
--       answer was lost (the job running on its fence with its own ``claim`` token) gets the record
--       again, nothing written; any other claim of a running job is refused.
--       ARGV[11]: finished-jobs prefix; ARGV[12]: '1' when the new state is finished ('' otherwise):
--       a standalone job then enters its state's retention set instead of its state index.
--       ARGV[13]: the finished states (comma list: only a job leaving one is in a retention set).
--       ARGV[14]: effects ('' = none): a JSON list of writes applied only if the change is, each
--       a Redis command, or {run function name, keys, args} for a pipeline run's step.
--       ARGV[15]: with ARGV[10], the pipeline runs' key prefix: a pipeline job's record then also
--       holds ``next_specs``, {job: spec} of the dependants its success alone releases (one
--       dependency left), so its finish can create and send them in the same call (run_succeeded).
--       ARGV[16]: a time ('' or absent = none): the change is refused while the job's lease runs past
--       it, so a reaper's recovery never takes back a lease renewed since the reaper read it.
-- Schema version 4 keeps no events while a job is on the clean path (submitted, started on attempt
-- 1, succeeded on it): readers build them from the record (trainq.job.record.implied_events). The
-- first event off that path writes the implied ones before it and marks the record ('history').
-- Returns the state the job was in (or the record; or, with effects, {state, their replies}),
-- or false when the change was refused.
-- The record's fields this script reads (all of them when it returns the record), absent ones nil.
local record, fields, nulls = {}, cjson.decode(ARGV[5]), {}
for k, v in pairs(fields) do
  if v == 'null' then nulls[#nulls + 1] = k end
end
if ARGV[10] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do record[all[i]] = all[i + 1] end
else
  local names = {'state', 'fence', 'created_at', 'queue', 'type', 'pipeline_id', 'attempt', 'failures',
    'recoveries', 'started_at', 'finished_at', 'worker', 'v', 'history', unpack(nulls)}
  local got = redis.call('HMGET', KEYS[1], unpack(names))
  for i, name in ipairs(names) do
    if got[i] then record[name] = got[i] end
  end
end
local cur, fence, created, queue, kind, run, attempt = record.state, record.fence, record.created_at,
  record.queue, record.type, record.pipeline_id, record.attempt
local failures, recoveries, started, finished, worker = record.failures, record.recoveries,
  record.started_at, record.finished_at, record.worker
if not cur then return false end
cur = cjson.decode(cur)
-- The record as returned to a claim (after its writes), with the pipeline dependants it releases.
local function claimed()
  local parts = {}
  for k, v in pairs(record) do parts[#parts + 1] = cjson.encode(k) .. ':' .. v end
  if (ARGV[15] or '') ~= '' and run and run ~= 'null' and record.pipeline_job then
    local prefix = ARGV[15] .. cjson.decode(run)
    local spec = redis.call('HGET', prefix .. ':specs', cjson.decode(record.pipeline_job))
    local following = {}
    for _, d in ipairs(spec and cjson.decode(spec).dependants or {}) do
      if redis.call('HGET', prefix .. ':waiting', d) == '1' then
        following[#following + 1] = cjson.encode(d) .. ':' .. redis.call('HGET', prefix .. ':specs', d)
      end
    end
    if #following > 0 then parts[#parts + 1] = '"next_specs":{' .. table.concat(following, ',') .. '}' end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end
if ARGV[10] == '1' and cur == 'running' and fence == ARGV[2] and fields.claim and record.claim == fields.claim then
  return claimed()
end
local allowed = false
for s in string.gmatch(ARGV[3], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return false end
if ARGV[2] ~= '' and fence ~= ARGV[2] then return false end
if (ARGV[16] or '') ~= '' then
  local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if lease and tonumber(lease) > tonumber(ARGV[16]) then return false end
end
local new = ARGV[4]
local values, gone = {}, {}
for _, k in ipairs(nulls) do
  if record[k] then gone[#gone + 1] = k end  -- a null removes a field only where there is one
end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
for k, v in pairs(fields) do
  if v ~= 'null' then
    values[#values + 1] = k
    values[#values + 1] = v
  end
end
if new ~= cur then
  values[#values + 1] = 'state'
  values[#values + 1] = cjson.encode(new)
end
local event = ARGV[6]
if ARGV[10] == '1' then
  event = (string.gsub(event, '"attempt":%-1', '"attempt":' .. attempt, 1))
end
local function none(v) return v == nil or v == cjson.null end
-- True when ``event`` is the next step of the clean path: the first start, or its success.
local function clean_step()
  if attempt ~= '1' or (failures and failures ~= '0') or (recoveries and recoveries ~= '0') then return false end
  for _, name in ipairs({'attempt', 'failures', 'recoveries', 'created_at'}) do
    if fields[name] then return false end
  end
  local e = cjson.decode(event)
  if e.state ~= new or e.attempt ~= 1 or not none(e.reason) then return false end
  if cur == 'queued' and new == 'running' then
    return fields.started_at and e.at == tonumber(fields.started_at) and fields.worker
      and e.worker == cjson.decode(fields.worker) and not fields.finished_at
  end
  if cur == 'running' and new == 'succeeded' then
    return fields.finished_at and e.at == tonumber(fields.finished_at) and worker
      and e.worker == cjson.decode(worker) and not (fields.worker or fields.started_at)
  end
  return false
end
local implied = record.v and tonumber(record.v) >= 4 and not record.history
if implied and (new ~= cur or event ~= '') and not (event ~= '' and clean_step()) then
  -- Off the clean path: the events it implied so far go first, and the list holds the history now.
  local past = {cjson.encode({state = 'queued', at = tonumber(created), reason = 'submitted'})}
  if (cur == 'running' or cur == 'succeeded') and started and worker then
    local on = cjson.decode(worker)
    past[2] = cjson.encode({state = 'running', at = tonumber(started), attempt = 1, worker = on})
    if cur == 'succeeded' and finished then
      past[3] = cjson.encode({state = 'succeeded', at = tonumber(finished), attempt = 1, worker = on})
    end
  end
  if event ~= '' then past[#past + 1] = event end
  redis.call('RPUSH', KEYS[2], unpack(past))
  values[#values + 1] = 'history'
  values[#values + 1] = '1'
elseif not implied and event ~= '' then
  redis.call('RPUSH', KEYS[2], event)
end
if #values > 0 then redis.call('HSET', KEYS[1], unpack(values)) end
if new ~= cur then
  redis.call('ZREM', ARGV[7] .. cur, ARGV[1])
  if ARGV[12] ~= '' and (not run or run == 'null') then
    redis.call('ZADD', ARGV[11] .. new, created, ARGV[1])
  else
    redis.call('ZADD', ARGV[7] .. new, created, ARGV[1])
  end
  local route = '[' .. queue .. ',' .. kind .. ',"'
  redis.call('HINCRBY', ARGV[9], route .. cur .. '"]', -1)
  redis.call('HINCRBY', ARGV[9], route .. new .. '"]', 1)
  if string.find(',' .. ARGV[13] .. ',', ',' .. cur .. ',', 1, true) then
    redis.call('ZREM', ARGV[11] .. cur, ARGV[1])
  end
end
if ARGV[8] == '0' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
end
if ARGV[10] == '1' then
  for _, k in ipairs(gone) do record[k] = nil end
  for i = 1, #values, 2 do record[values[i]] = values[i + 1] end
  return claimed()
end
if ARGV[14] == '' then return cur end
local steps, replies = {run_succeeded = run_succeeded, run_failed = run_failed}, {}
for i, effect in ipairs(cjson.decode(ARGV[14])) do
  local step = steps[effect[1]]
  if step then replies[i] = step(effect[2], effect[3]) else replies[i] = redis.call(unpack(effect)) end
end
return {cur, replies}
