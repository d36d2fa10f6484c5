-- A keyed job arrives: ARGV[8..11] its key, its id, the policy it brings ('' for none) and its
-- fair queue ('' if it is not fair). It passes (takes a slot and a token) when its key has none
-- parked, a free slot and a token, and its fair queue a free place in its window; else it is parked.
-- Returns {1 passed or 0 parked, running, max_running or -1, rate or '', supersede or '', the fair
-- queue whose window is full or ''}.
local key, job, brought, fair = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if brought ~= '' then redis.call('HSETNX', LIMITS, key, brought) end
if fair ~= '' then redis.call('HSET', FAIR_JOBS, job, fair) end
redis.call('SADD', ACTIVE, key)
local pol, now, passed = policy(key), now_s(), 0
local full = shut_out(job, now, {})
if redis.call('LLEN', parked(key)) == 0 and has_slot(key, pol) and not full then
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
return {
  passed, redis.call('SCARD', running(key)), pol.max_running or -1, pol.rate or '', pol.supersede or '',
  full or ''
}
