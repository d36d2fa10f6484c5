-- A[3] the job that succeeded. Returns the released jobs and their specs, flat.
local function run_succeeded(K, A)
  local job, released = A[3], {}
  if redis.call('HGET', K[2], job) ~= 'released' then return released end
  redis.call('HSET', K[2], job, 'succeeded')
  redis.call('HSET', K[1], 'updated_at', A[2])
  if redis.call('HGET', K[1], 'state') == 'running' then
    for _, d in ipairs(dependants(K, job)) do
      if redis.call('HGET', K[2], d) == 'waiting' and redis.call('HINCRBY', K[4], d, -1) <= 0 then
        redis.call('HDEL', K[4], d)
        redis.call('HSET', K[2], d, 'released')
        table.insert(released, d)
        table.insert(released, redis.call('HGET', K[3], d))
      end
    end
  end
  settle(K, A)
  return released
end
