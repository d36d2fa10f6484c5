-- Start parked jobs while some key has one, a free slot and a token: the waiting keys take turns
-- by virtual time (a key's turn moves on by 1/weight a start). ARGV prefix, most to start, then
-- keys to look at again (a slot freed, a limit changed). Returns {key1, job1, key2, job2, ...,
-- seconds until the next token of a key waiting only for its rate, or -1}.
local most = tonumber(ARGV[2])
for i = 3, #ARGV do
  local key = ARGV[i]
  if redis.call('SCARD', running(key)) + redis.call('LLEN', parked(key)) == 0 then
    redis.call('SREM', ACTIVE, key)
    redis.call('ZREM', WAITING, key)
  else
    wake(key, policy(key))
  end
end
local now, started, next_s = now_s(), {}, -1
while #started < 2 * most do
  local picked = false
  local order = redis.call('ZRANGE', WAITING, 0, -1)
  for _, key in ipairs(order) do
    local pol = policy(key)
    if redis.call('LLEN', parked(key)) == 0 or not has_slot(key, pol) then
      redis.call('ZREM', WAITING, key)
    else
      local held, wait = tokens(key, pol, now)
      if held >= 1 then
        local job = redis.call('LPOP', parked(key))
        admit(key, pol, job, held, now)
        table.insert(started, key)
        table.insert(started, job)
        redis.call('ZREM', WAITING, key)
        wake(key, pol)
        picked = true
        break
      elseif next_s < 0 or wait < next_s then
        next_s = wait
      end
    end
  end
  if not picked then break end
end
table.insert(started, tostring(next_s))
return started
