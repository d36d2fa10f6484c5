-- ARGV[3] the job that succeeded. Returns the released jobs and their specs, flat.
local job, released = ARGV[3], {}
if redis.call('HGET', KEYS[2], job) ~= 'released' then return released end
redis.call('HSET', KEYS[2], job, 'succeeded')
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
if redis.call('HGET', KEYS[1], 'state') == 'running' then
  for _, d in ipairs(dependants(job)) do
    if redis.call('HGET', KEYS[2], d) == 'waiting' and redis.call('HINCRBY', KEYS[4], d, -1) <= 0 then
      redis.call('HDEL', KEYS[4], d)
      redis.call('HSET', KEYS[2], d, 'released')
      table.insert(released, d)
      table.insert(released, redis.call('HGET', KEYS[3], d))
    end
  end
end
settle()
return released
