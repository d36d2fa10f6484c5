-- A[3] the job that ended without success, A[4] the step it takes: 'failed' (absent: a worker of an
-- earlier release) or 'cancelled'. Returns how many jobs it blocked.
local function run_failed(K, A)
  local job, blocked = A[3], 0
  if redis.call('HGET', K[2], job) ~= 'released' then return blocked end
  redis.call('HSET', K[2], job, A[4] or 'failed')
  redis.call('HSET', K[1], 'updated_at', A[2])
  local todo, seen = {job}, {}
  while #todo > 0 do
    for _, d in ipairs(dependants(K, table.remove(todo))) do
      if not seen[d] then
        seen[d] = true
        table.insert(todo, d)
        if redis.call('HGET', K[2], d) == 'waiting' then
          redis.call('HSET', K[2], d, 'blocked')
          redis.call('HSET', K[5], d, job)
          blocked = blocked + 1
        end
      end
    end
  end
  settle(K, A)
  return blocked
end
