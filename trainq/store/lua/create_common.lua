-- New job records in one call: each record's hash and first event (none for a plain submit, whose
-- event its record implies: see transition.lua), then the index entries and counters of them all
-- (each written once), then the writes that go with them (idempotency key, kept message payload,
-- the broker's messages).
-- doc: {records: [[job key, [field, value, ...], events key, event or '']],
--   zadd: [[key, score, member, ...]], hincrby: [[key, field, n]], writes: [[command, arg, ...]]},
--   every value a string. Returns how many records were written.
local function create_records(doc)
  for _, r in ipairs(doc.records) do
    redis.call('HSET', r[1], unpack(r[2]))
    if r[4] ~= '' then redis.call('RPUSH', r[3], r[4]) end
  end
  for _, z in ipairs(doc.zadd) do redis.call('ZADD', unpack(z)) end
  for _, h in ipairs(doc.hincrby) do redis.call('HINCRBY', unpack(h)) end
  for _, w in ipairs(doc.writes) do redis.call(unpack(w)) end
  return #doc.records
end
