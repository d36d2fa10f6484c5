-- ARGV[3]: '' to reopen every failed, blocked and cancelled job (a resume), or one such job whose
-- dependencies have all succeeded, to reopen with the descendants it holds back (a retry of it);
-- a descendant another failed, blocked or cancelled job still holds stays blocked, by that job.
-- ARGV[4..]: per job: id, number of dependencies, the dependencies.
-- Returns how many jobs it reopened, then those whose dependencies have all succeeded.
local deps, children, order, i = {}, {}, {}, 4
while i <= #ARGV do
  local job, n = ARGV[i], tonumber(ARGV[i + 1])
  deps[job], children[job] = {}, children[job] or {}
  for j = i + 2, i + 1 + n do
    table.insert(deps[job], ARGV[j])
    children[ARGV[j]] = children[ARGV[j]] or {}
    table.insert(children[ARGV[j]], job)
  end
  table.insert(order, job)
  i = i + 2 + n
end
local steps = {}
local function step(job)
  if steps[job] == nil then steps[job] = redis.call('HGET', KEYS[2], job) or 'waiting' end
  return steps[job]
end
local function stopped(job)
  local s = step(job)
  return s == 'failed' or s == 'blocked' or s == 'cancelled'
end
local reopen, scope = {}, ARGV[3]
if scope == '' then
  for _, job in ipairs(order) do reopen[job] = stopped(job) end
elseif deps[scope] and stopped(scope) then
  local ready = true
  for _, d in ipairs(deps[scope]) do ready = ready and step(d) == 'succeeded' end
  if ready then
    -- the stopped descendants, in dependency order (Kahn's, within them): each is reopened unless a
    -- dependency outside the reopened jobs is stopped, and is then blocked by what blocks that one
    local within, todo = {[scope] = 0}, {scope}
    while #todo > 0 do
      for _, c in ipairs(children[table.remove(todo)]) do
        if within[c] == nil and stopped(c) then
          within[c] = 0
          table.insert(todo, c)
        end
      end
    end
    for job in pairs(within) do
      for _, d in ipairs(deps[job]) do
        if within[d] then within[job] = within[job] + 1 end
      end
    end
    todo = {scope}
    while #todo > 0 do
      local job = table.remove(todo)
      local holder
      for _, d in ipairs(deps[job]) do
        if not reopen[d] and stopped(d) then
          holder = step(d) == 'blocked' and redis.call('HGET', KEYS[5], d) or d
          break
        end
      end
      if holder == nil then
        reopen[job] = true
      elseif step(job) == 'blocked' then
        redis.call('HSET', KEYS[5], job, holder)
      end
      for _, c in ipairs(children[job]) do
        if within[c] then
          within[c] = within[c] - 1
          if within[c] == 0 then table.insert(todo, c) end
        end
      end
    end
  end
end
local restart, reopened = {}, 0
for _, job in ipairs(order) do
  if reopen[job] then
    reopened = reopened + 1
    local left = 0
    for _, d in ipairs(deps[job]) do
      if step(d) ~= 'succeeded' then left = left + 1 end
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
end
if reopened > 0 then
  redis.call('HSET', KEYS[1], 'state', 'running', 'updated_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'finished_at')
  redis.call('SADD', KEYS[6], ARGV[1])
  for i = 7, 9 do redis.call('ZREM', KEYS[i], ARGV[1]) end
end
table.insert(restart, 1, reopened)
return restart
