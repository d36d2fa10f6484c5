-- ARGV[1]: JSON of create_records' doc (create_common.lua), with ``unless``: [hash key, field, value]
-- or absent, and ``fresh``: true or absent. Returns how many records were written; false, with
-- nothing written, when ``unless``'s field holds its value (a cancelled pipeline run's group) or,
-- with ``fresh``, when one of the records exists (a group another process recorded meanwhile: a
-- record is never written over, so a job that started is never queued again).
local doc = cjson.decode(ARGV[1])
if doc.unless and redis.call('HGET', doc.unless[1], doc.unless[2]) == doc.unless[3] then return false end
if doc.fresh then
  for _, r in ipairs(doc.records) do
    if redis.call('EXISTS', r[1]) == 1 then return false end
  end
end
return create_records(doc)
