-- ARGV[1]: JSON of create_records' doc (create_common.lua), with ``unless``: [hash key, field, value]
-- or absent. Returns how many records were written; false, with nothing written, when ``unless``'s
-- field holds its value (a cancelled pipeline run's group).
local doc = cjson.decode(ARGV[1])
if doc.unless and redis.call('HGET', doc.unless[1], doc.unless[2]) == doc.unless[3] then return false end
return create_records(doc)
