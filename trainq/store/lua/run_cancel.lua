-- Returns the released jobs to stop, or false if the run is not running.
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return false end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('ZADD', KEYS[9], ARGV[2], ARGV[1])
local flat, active = redis.call('HGETALL', KEYS[2]), {}
for i = 1, #flat, 2 do
  if flat[i + 1] == 'waiting' then redis.call('HSET', KEYS[2], flat[i], 'cancelled')
  elseif flat[i + 1] == 'released' then table.insert(active, flat[i]) end
end
return active
