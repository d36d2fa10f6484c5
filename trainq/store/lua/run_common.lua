-- Shared by the run scripts, each a function of (K, A): K the keys run, jobs, specs, waiting,
-- blocked, running, then the finished-runs sets (retention) of succeeded, failed, cancelled;
-- A the run id, now, ... A script alone ends with ``return <function>(KEYS, ARGV)``; the
-- transition script calls them as a job's finish effects.
local function settle(K, A)
  if redis.call('HGET', K[1], 'state') ~= 'running' then return end
  local ok = true
  for _, step in ipairs(redis.call('HVALS', K[2])) do
    if step == 'waiting' or step == 'released' then return end
    if step ~= 'succeeded' then ok = false end
  end
  redis.call('HSET', K[1], 'state', ok and 'succeeded' or 'failed', 'finished_at', A[2])
  redis.call('SREM', K[6], A[1])
  redis.call('ZADD', ok and K[7] or K[8], A[2], A[1])
end
local function dependants(K, job) return cjson.decode(redis.call('HGET', K[3], job)).dependants end
