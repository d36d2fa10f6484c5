-- Start parked jobs while some key has one, a free slot and a token: the waiting keys take turns
-- by virtual time (a key's turn moves on by 1/weight a start); a key whose next job's fair queue
-- has a full window is passed over, as one waiting for its rate. ARGV[8..] most to start, the
-- prefix of job records, then keys to look at again (a slot freed, a limit changed). Returns
-- {key1, job1, record1, key2, ..., seconds until the next token of a key waiting only for its
-- rate, or -1}, each record as HGETALL reads it (the caller sends the job with it).
local most, records, next_s = tonumber(ARGV[8]), ARGV[9], -1
for i = 10, #ARGV do
  local key = ARGV[i]
  if redis.call('SCARD', running(key)) + redis.call('LLEN', parked(key)) == 0 then
    redis.call('SREM', ACTIVE, key)
    redis.call('ZREM', WAITING, key)
  else
    wake(key, policy(key))
  end
end
-- One start: the first waiting key in turn order that may start a job now, read a page at a time
-- (only keys waiting for their rate or a fair queue's window are passed over); false when none may.
local PAGE = 16
local closed, now = {}, nil
local function start_one()
  local from = 0
  while true do
    local page = redis.call('ZRANGE', WAITING, from, from + PAGE - 1)
    if #page == 0 then return false end
    now = now or now_s() -- read once some key waits: an idle admission (every tick) costs one ZRANGE
    for _, key in ipairs(page) do
      local pol = policy(key)
      if redis.call('LLEN', parked(key)) == 0 or not has_slot(key, pol) then
        redis.call('ZREM', WAITING, key)
        from = from - 1
      elseif shut_out(redis.call('LINDEX', parked(key), 0), now, closed) then
        -- its fair queue's window is full: it keeps its turn until a place frees
      else
        local held, wait = tokens(key, pol, now)
        if held >= 1 then
          local job = redis.call('LPOP', parked(key))
          admit(key, pol, job, held, now)
          redis.call('ZREM', WAITING, key)
          wake(key, pol)
          return key, job
        elseif next_s < 0 or wait < next_s then
          next_s = wait
        end
      end
    end
    from = from + PAGE
  end
end

local started = {}
while #started < 3 * most do
  local key, job = start_one()
  if not key then break end
  table.insert(started, key)
  table.insert(started, job)
  table.insert(started, redis.call('HGETALL', records .. job))
end
table.insert(started, tostring(next_s))
return started
