-- A keyed job arrives: ARGV[5..7] its key, its id and the policy it brings ('' for none).
-- It passes (takes a slot and a token) when its key has none parked, a free slot and a token;
-- else it is parked. Returns {1 passed or 0 parked, running, max_running or -1, rate or '',
-- supersede or ''}.
local key, job, brought = ARGV[5], ARGV[6], ARGV[7]
if brought ~= '' then redis.call('HSETNX', LIMITS, key, brought) end
redis.call('SADD', ACTIVE, key)
local pol, now, passed = policy(key), now_s(), 0
if redis.call('LLEN', parked(key)) == 0 and has_slot(key, pol) then
  local held = tokens(key, pol, now)
  if held >= 1 then
    admit(key, pol, job, held, now)
    passed = 1
  end
end
if passed == 0 then
  redis.call('RPUSH', parked(key), job)
  wake(key, pol)
end
return {passed, redis.call('SCARD', running(key)), pol.max_running or -1, pol.rate or '', pol.supersede or ''}
