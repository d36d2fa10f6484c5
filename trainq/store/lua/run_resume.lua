-- ARGV[3..]: per job: id, number of dependencies, the dependencies. Reopens failed, blocked
-- and cancelled jobs; returns how many, then those whose dependencies have all succeeded.
local restart, reopened, i = {}, 0, 3
while i <= #ARGV do
  local job, n = ARGV[i], tonumber(ARGV[i + 1])
  local step = redis.call('HGET', KEYS[2], job)
  if step == 'failed' or step == 'blocked' or step == 'cancelled' then
    reopened = reopened + 1
    local left = 0
    for j = i + 2, i + 1 + n do
      if redis.call('HGET', KEYS[2], ARGV[j]) ~= 'succeeded' then left = left + 1 end
    end
    redis.call('HDEL', KEYS[5], job)
    if left == 0 then
      redis.call('HSET', KEYS[2], job, 'released')
      table.insert(restart, job)
    else
      redis.call('HSET', KEYS[2], job, 'waiting')
      redis.call('HSET', KEYS[4], job, left)
    end
  end
  i = i + 2 + n
end
if reopened > 0 then
  redis.call('HSET', KEYS[1], 'state', 'running', 'updated_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'finished_at')
  redis.call('SADD', KEYS[6], ARGV[1])
  for i = 7, 9 do redis.call('ZREM', KEYS[i], ARGV[1]) end
end
table.insert(restart, 1, reopened)
return restart
