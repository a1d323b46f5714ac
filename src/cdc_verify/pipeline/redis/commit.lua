-- The commit script (commit.py): one atomic call makes a batch of outcomes durable.
--
-- commit.py prepends the names this body reads, built from Python's own lists, and
-- decisions.lua (the generations: gen_load, gen_for_new, ...):
--   K      the keys (K.verdicts, ...)            A      the arguments (A.group, ...)
--   ROW    the fields of an outcome's row
--   KIND   the outcome kinds (core/outcome.py's OutcomeKind: KIND.PRIMARY = 'P', ...)
--
-- The outcomes come as one flat array, row after row (B[o + ROW.kind], o the row's offset),
-- the entries each settles as two strings of ids: a Lua table per outcome or entry was
-- most of what unpacking them cost.
--
-- Sections, one job each: fence, filing, type checks, decisions, counters, shapes, settling,
-- alerts, records, verdict stream, read-only positions; then the outcomes, each by its
-- kind; then what is written once per call (in this order: matches, counters, shapes,
-- decision hashes' expiry, read-only positions, acks, trimming).

---------------------------------------------------------------------------- fence
-- '' for no lock; else nothing is written unless K.lock holds this worker's token.
if A.lock_token ~= '' and redis.call('GET', K.lock) ~= A.lock_token then
  return redis.error_reply('LOCKLOST the worker lock is held by another worker')
end

-------------------------------------------------------------------------- filing
-- Each decision's hash, chosen before anything is written: a ULID's comes with its row;
-- another event_id's is in a generation (decisions.lua), which a new decision may open
-- or split (in `gens`, saved once per call), and a late arrival's is the one that covers
-- its first-seen time, if any (else it was kept in a key of its own).
local B = cmsgpack.unpack(A.outcomes)
local F = 0  -- fields per row
for _ in pairs(ROW) do F = F + 1 end
local LAST = #B - F  -- the last row's offset
local ttl, ttl_ms, now_ms = A.decided_ttl_ms, tonumber(A.decided_ttl_ms), tonumber(A.now_ms)
local gens = nil
local filed = {}  -- row offset -> the generation its new decision goes to
for o = 0, LAST, F do
  if B[o + ROW.bucket] == '' and B[o + ROW.shard_hash] >= 0 then
    gens = gens or gen_load(K.decision_generations, A.decisions_prefix)
    local g
    if B[o + ROW.kind] == KIND.LATE then
      g = gen_covering(gens, B[o + ROW.first_seen_ms])
    else
      g = gen_for_new(gens, B[o + ROW.first_seen_ms], ttl_ms, A.decisions_prefix)
      filed[o] = g
      g.keep = math.max(g.keep, hash_expire_at(g.stop, now_ms, ttl_ms))
    end
    if g then
      B[o + ROW.bucket], B[o + ROW.bucket_end_ms] = gen_bucket(g, B[o + ROW.shard_hash]), g.stop
    end
  end
end

---------------------------------------------------------------------- type checks
-- Redis does not undo a script that fails half way: a key of the wrong type would
-- leave decisions written without their verdicts. Check before writing anything.
local key_types = {
  [K.verdicts] = 'stream', [K.alerts_open] = 'hash', [K.alerts_resolved] = 'hash',
  [K.alerts_open_index] = 'zset', [K.alerts_resolved_index] = 'zset',
  [K.positions] = 'hash', [K.production_waiting] = 'zset', [K.counts] = 'hash',
  [K.shapes] = 'hash', [K.shape_counts] = 'hash', [K.shape_wide] = 'set',
  [K.decision_generations] = 'hash',
}
for o = 0, LAST, F do
  if B[o + ROW.bucket] ~= '' then key_types[B[o + ROW.bucket]] = 'hash' end
end
for key, wanted in pairs(key_types) do
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', not a ' .. wanted)
  end
end

------------------------------------------------------------------------ decisions
-- decisions.py reads them: a hash per second of ULID time or per generation's shard, or
-- a key per event_id.
local expiring = {}  -- decision hash -> the end of the span it covers, for those written
-- A value we wrote: an encoded decision, or the text form of earlier versions.
local function ours(v)
  return v and (string.match(v, '^%d+$') or string.match(v, '^[a-z_]+|[ps]+|%d+$'))
end
-- Remembers the outcome's decision unless one is there already: true if this call did.
local function decide(o)
  local eid, value, bucket = B[o + ROW.event_id], B[o + ROW.decision], B[o + ROW.bucket]
  if bucket == '' then
    local key = A.decided_prefix .. eid
    if redis.call('SET', key, value, 'NX', 'PX', ttl) then return true end
    if ours(redis.call('GET', key)) then return false end
    redis.call('SET', key, value, 'PX', ttl)  -- anything else is overwritten
    return true
  end
  -- (Measured: one HMGET and one HSET per hash cost more; a batch brings a hash a few.)
  if redis.call('HSETNX', bucket, eid, value) == 0 then
    if ours(redis.call('HGET', bucket, eid)) then return false end
    redis.call('HSET', bucket, eid, value)
  end
  local g = filed[o]
  if g then g.count = g.count + 1 end  -- what sizes the next generations
  expiring[bucket] = B[o + ROW.bucket_end_ms]
  return true
end
-- A late arrival: the decision now has both sides.
local function redecide(o)
  local bucket, eid = B[o + ROW.bucket], B[o + ROW.event_id]
  if bucket ~= '' and redis.call('HEXISTS', bucket, eid) == 1 then
    redis.call('HSET', bucket, eid, B[o + ROW.decision])
  else  -- kept in a key of its own (or by an earlier version)
    redis.call('SET', A.decided_prefix .. eid, B[o + ROW.decision], 'XX', 'KEEPTTL')
  end
end
local function expire_decisions()
  for bucket, stop in pairs(expiring) do
    redis.call('PEXPIREAT', bucket, string.format('%d', hash_expire_at(stop, now_ms, ttl_ms)))
  end
  if gens then gen_save(K.decision_generations, gens, now_ms) end
end

------------------------------------------------------------------------- counters
-- counters.py reads them: K.counts, this minute's hash "<name>|<entity>|<op>" -> count.
local tally = {}  -- counter field -> increment: what this call made durable, counted once
local function count(name, o)
  local field = name .. '|' .. B[o + ROW.entity] .. '|' .. B[o + ROW.op]
  tally[field] = (tally[field] or 0) + 1
end
local function write_counts()
  local counted = false
  for field, n in pairs(tally) do
    redis.call('HINCRBY', K.counts, field, n)
    counted = true
  end
  if counted then redis.call('PEXPIREAT', K.counts, A.counts_expire_at_ms) end
end

--------------------------------------------------------------------------- shapes
-- Shape coverage (shapes.py). A shape's parts are stored from the first outcome that
-- carries them, under the cap, whether or not this call makes that outcome durable (the
-- writer sends them once); counts are taken only for what this call made durable.
local max_shapes = tonumber(A.max_shapes)
local shape_known = {}  -- shape key -> whether K.shapes holds it
local shape_tally = {}  -- K.shape_counts field -> increment
local function hold_shape(o)
  local key = B[o + ROW.shape]
  local known = shape_known[key]
  if known == nil then
    known = redis.call('HEXISTS', K.shapes, key) == 1
  end
  if not known and B[o + ROW.shape_parts] ~= '' then
    local held = B[o + ROW.entity] .. '|+shapes'
    if tonumber(redis.call('HGET', K.shape_counts, held) or '0') < max_shapes then
      redis.call('HSET', K.shapes, key, B[o + ROW.shape_parts])
      redis.call('HINCRBY', K.shape_counts, held, 1)
      known = true
    end
  end
  shape_known[key] = known
end
local function count_shape(o)
  local status, key = B[o + ROW.shape_status], B[o + ROW.shape]
  if status == '' then return end
  local field
  if key == '' then
    field = B[o + ROW.entity] .. '|+undecodable'
  elseif shape_known[key] then
    field = key
  else
    field = B[o + ROW.entity] .. '|+overflow'
  end
  field = field .. '|' .. status
  shape_tally[field] = (shape_tally[field] or 0) + 1
end
local function write_shapes()
  for field, n in pairs(shape_tally) do
    redis.call('HINCRBY', K.shape_counts, field, n)
  end
  local wide = cmsgpack.unpack(A.shape_wide_add)
  for j = 1, #wide, 500 do
    redis.call('SADD', K.shape_wide, unpack(wide, j, math.min(j + 499, #wide)))
  end
end

------------------------------------------------------------------------- settling
-- How each stream's entries are settled: SETTLE, settle_mode.py's SettleMode.
local streams = {K.production, K.sister}
local modes = {A.settle_production, A.settle_sister}
local bulk = {{}, {}}  -- acks whose answer does not matter
local function mark(stream, id)
  local marker = A.settled_prefix .. stream .. ':' .. id
  return redis.call('SET', marker, 1, 'NX', 'PX', ttl) and 1 or 0
end
-- A duplicate, malformed or late entry: 1 if this call settled it, 0 if done before.
local function settle(stream, id)
  local mode = modes[stream]
  if mode == SETTLE.ACK then
    return redis.call('XACK', streams[stream], A.group, id)
  end
  if mode == SETTLE.POSITION then redis.call('ZREM', K.production_waiting, id) end
  return mark(stream, id)
end
-- An entry of a primary verdict (guarded by its decision) or of a skip.
local function settle_quietly(stream, id)
  local mode = modes[stream]
  if mode == SETTLE.ACK then
    local ids = bulk[stream]
    ids[#ids + 1] = id
  elseif mode == SETTLE.MARK then
    mark(stream, id)  -- a copy read again later (from a pending list) is then known settled
  else
    redis.call('ZREM', K.production_waiting, id)
  end
end
-- The ids of the outcome's entries, by stream: mostly one or none, else space separated.
local ids_field = {ROW.production_ids, ROW.sister_ids}
-- The outcome's entries settled: the number this call settled.
local function settle_all(o)
  local acked = 0
  for stream = 1, 2 do
    local ids = B[o + ids_field[stream]]
    if not string.find(ids, ' ', 1, true) then
      if ids ~= '' then acked = acked + settle(stream, ids) end
    else
      for id in string.gmatch(ids, '%S+') do acked = acked + settle(stream, id) end
    end
  end
  return acked
end
local function settle_all_quietly(o)
  for stream = 1, 2 do
    local ids = B[o + ids_field[stream]]
    if not string.find(ids, ' ', 1, true) then
      if ids ~= '' then settle_quietly(stream, ids) end
    else
      for id in string.gmatch(ids, '%S+') do settle_quietly(stream, id) end
    end
  end
end
local function write_acks()
  for i = 1, 2 do
    local ids = bulk[i]
    for j = 1, #ids, 500 do  -- unpack() is bounded by Lua's stack
      redis.call('XACK', streams[i], A.group, unpack(ids, j, math.min(j + 499, #ids)))
    end
  end
end

--------------------------------------------------------------------------- alerts
-- alerts.py builds their JSON and reads them: a hash (event_id -> alert) per state,
-- each with a sorted set of event_ids by the time they were opened (resolved).
local function open_alert(o)
  local eid = B[o + ROW.event_id]
  redis.call('HSET', K.alerts_open, eid, B[o + ROW.alert])
  redis.call('ZADD', K.alerts_open_index, A.now_ms, eid)
end
-- A late arrival resolves its gap's alert, if still open: the alert and what the late
-- arrival adds to it move to the resolved ones.
local function resolve_alert(o)
  local eid = B[o + ROW.event_id]
  local open = redis.call('HGET', K.alerts_open, eid)
  if open then
    local merged = cjson.decode(open)
    for k, v in pairs(cjson.decode(B[o + ROW.alert])) do merged[k] = v end
    redis.call('HSET', K.alerts_resolved, eid, cjson.encode(merged))
    redis.call('ZADD', K.alerts_resolved_index, A.now_ms, eid)
    redis.call('HDEL', K.alerts_open, eid)
    redis.call('ZREM', K.alerts_open_index, eid)
  end
end

-------------------------------------------------------------------------- records
-- Records other than `match` are kept by event_id (the API's "verdict of one event");
-- a match is told by its decision.
local function keep_record(o)
  redis.call('SET', A.record_prefix .. B[o + ROW.event_id], B[o + ROW.record], 'PX', A.record_ttl_ms)
end

------------------------------------------------------------------- verdict stream
local maxlen = tonumber(A.verdict_maxlen)
local written = 0
local compact, matches = A.compact_matches == '1', {}  -- event_ids of matches, in order
local function add_verdict(o)
  local eid, verdict = B[o + ROW.event_id], B[o + ROW.verdict]
  if compact and verdict == 'match' then
    table.insert(matches, eid)
  else
    redis.call('XADD', K.verdicts, '*', 'event_id', eid, 'verdict', verdict,
               'record', B[o + ROW.record])
  end
  written = written + 1
end
local function write_matches()
  if #matches > 0 then  -- event_ids never hold whitespace (wire-format.md): space separated
    redis.call('XADD', K.verdicts, '*', 'verdict', 'match', 'count', #matches,
               'event_ids', table.concat(matches, ' '))
  end
end
local function trim_verdicts()
  if maxlen > 0 and written > 0 then
    redis.call('XTRIM', K.verdicts, 'MAXLEN', '~', maxlen)
  end
end

----------------------------------------------------------- read-only positions
-- readonly_stream.py reads them: the last production entry id read, and the entries
-- that wait for a partner now (msgpack [[id, ms], ...]).
local function write_positions()
  local waiting = cmsgpack.unpack(A.production_waiting_add)
  for j = 1, #waiting, 500 do
    local args = {}
    for k = j, math.min(j + 499, #waiting) do
      table.insert(args, waiting[k][2])
      table.insert(args, waiting[k][1])
    end
    redis.call('ZADD', K.production_waiting, unpack(args))
  end
  if A.production_position ~= '' then
    redis.call('HSET', K.positions, 'production', A.production_position)
  end
end

------------------------------------------------------------ outcomes, by kind
-- Each returns whether this call made the outcome durable (not a retry's repeat), and
-- whether it gets an entry in the verdict stream.

-- Out of scope: no verdict, but remembered (a later twin is late, not a new event)
-- and counted, once: the decision's SET NX guards a retried commit.
local function commit_out_of_scope(o)
  settle_all_quietly(o)
  local settled = decide(o)
  if settled then
    count('out_of_scope', o)
    count_shape(o)
  end
  return settled, false
end
-- A primary verdict: the decision's SET NX (HSETNX) guards it.
local function commit_primary(o)
  settle_all_quietly(o)
  local emit = decide(o)
  if emit and B[o + ROW.alert] ~= '' then open_alert(o) end
  if emit and B[o + ROW.verdict] ~= 'match' then keep_record(o) end
  return emit, emit
end
local function commit_skip(o)
  settle_all_quietly(o)
  return true, false
end
-- A duplicate or malformed record: the XACK (marker) of its own entry guards it.
local function commit_extra(o)
  local emit = settle_all(o) > 0
  return emit, emit
end
-- A late arrival, guarded as an extra record is; no verdict of its own.
local function commit_late(o)
  if settle_all(o) == 0 then return false, false end
  count('late', o)
  redecide(o)
  resolve_alert(o)
  return true, false
end
-- A tombstone: no verdict, counted once (the XACK or marker of its entry guards it).
local function commit_tombstone(o)
  if settle_all(o) == 0 then return false, false end
  count('tombstone', o)
  return true, false
end
local commit_kind = {
  [KIND.OUT_OF_SCOPE] = commit_out_of_scope, [KIND.PRIMARY] = commit_primary,
  [KIND.TOMBSTONE] = commit_tombstone,
  [KIND.SKIP] = commit_skip, [KIND.EXTRA] = commit_extra, [KIND.LATE] = commit_late,
}

local fresh = {}  -- per outcome: 1 if this call made it durable, 0 if done before
for o = 0, LAST, F do
  if B[o + ROW.shape] ~= '' then hold_shape(o) end
  local made, emit = commit_kind[B[o + ROW.kind]](o)
  if emit then
    add_verdict(o)
    count(B[o + ROW.verdict], o)
    count_shape(o)
  end
  fresh[#fresh + 1] = made and 1 or 0
end

---------------------------------------------------------------- once per call
write_matches()
write_counts()
write_shapes()
expire_decisions()
write_positions()
write_acks()
trim_verdicts()
return fresh
