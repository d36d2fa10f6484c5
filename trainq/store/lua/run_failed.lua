-- ARGV[3] the job that ended without success. Returns how many jobs it blocked.
local job, blocked = ARGV[3], 0
if redis.call('HGET', KEYS[2], job) ~= 'released' then return blocked end
redis.call('HSET', KEYS[2], job, 'failed')
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
local todo, seen = {job}, {}
while #todo > 0 do
  for _, d in ipairs(dependants(table.remove(todo))) do
    if not seen[d] then
      seen[d] = true
      table.insert(todo, d)
      if redis.call('HGET', KEYS[2], d) == 'waiting' then
        redis.call('HSET', KEYS[2], d, 'blocked')
        redis.call('HSET', KEYS[5], d, job)
        blocked = blocked + 1
      end
    end
  end
end
settle()
return blocked
