-- Every script: KEYS run, jobs, specs, waiting, blocked, running, then the finished-runs sets
-- (retention) of succeeded, failed, cancelled; ARGV run id, now, ...
local function settle()
  if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return end
  local ok = true
  for _, step in ipairs(redis.call('HVALS', KEYS[2])) do
    if step == 'waiting' or step == 'released' then return end
    if step ~= 'succeeded' then ok = false end
  end
  redis.call('HSET', KEYS[1], 'state', ok and 'succeeded' or 'failed', 'finished_at', ARGV[2])
  redis.call('SREM', KEYS[6], ARGV[1])
  redis.call('ZADD', ok and KEYS[7] or KEYS[8], ARGV[2], ARGV[1])
end
local function dependants(job) return cjson.decode(redis.call('HGET', KEYS[3], job)).dependants end
