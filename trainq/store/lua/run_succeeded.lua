-- A[3] the job that succeeded; A[4] (optional) JSON {job: create_records doc} of dependants built
-- beforehand, records and messages: one this step releases is created here, its spec returned as ''.
-- Returns the released jobs and their specs, flat.
local function run_succeeded(K, A)
  local job, released = A[3], {}
  local built = (A[4] and A[4] ~= '') and cjson.decode(A[4]) or {}
  if redis.call('HGET', K[2], job) ~= 'released' then return released end
  redis.call('HSET', K[2], job, 'succeeded')
  redis.call('HSET', K[1], 'updated_at', A[2])
  if redis.call('HGET', K[1], 'state') == 'running' then
    for _, d in ipairs(dependants(K, job)) do
      if redis.call('HGET', K[2], d) == 'waiting' and redis.call('HINCRBY', K[4], d, -1) <= 0 then
        redis.call('HDEL', K[4], d)
        redis.call('HSET', K[2], d, 'released')
        table.insert(released, d)
        if built[d] then
          create_records(built[d])
          table.insert(released, '')
        else
          table.insert(released, redis.call('HGET', K[3], d))
        end
      end
    end
  end
  settle(K, A)
  return released
end
