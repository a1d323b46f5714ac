-- The commit's skeleton, for bench/commit_cost.py --script: only the writes the
-- exactly-one-verdict guarantee needs, none of the rest of the contract. Each decision's
-- HSETNX, a verdict-stream entry per record (with --compact-matches: per record that is
-- not a match, and one for a call's matches), and the acks. No fence, type checks, counters, shapes, alerts, records,
-- expiries or read-only positions; decisions filed by generation or kept in keys of their
-- own (not ULIDs) are left out, as are the markers of a marking settle mode.
--
-- What it costs the state server is a floor for any commit script that keeps decisions
-- where commit.lua keeps them (bench/README.md, "commit_cost.py").

local B = cmsgpack.unpack(A.outcomes)
local F = 0
for _ in pairs(ROW) do F = F + 1 end
local streams, ids_field = {K.production, K.sister}, {ROW.production_ids, ROW.sister_ids}
local acks, matches, fresh = {{}, {}}, {}, {}
local compact = A.compact_matches == '1'  -- as commit.lua: matches in one entry a call
for o = 0, #B - F, F do
  local kind, eid = B[o + ROW.kind], B[o + ROW.event_id]
  local made = true
  if (kind == KIND.PRIMARY or kind == KIND.OUT_OF_SCOPE) and B[o + ROW.bucket] ~= '' then
    made = redis.call('HSETNX', B[o + ROW.bucket], eid, B[o + ROW.decision]) == 1
  end
  for stream = 1, 2 do
    local held = acks[stream]
    for id in string.gmatch(B[o + ids_field[stream]], '%S+') do held[#held + 1] = id end
  end
  if made and (kind == KIND.PRIMARY or kind == KIND.EXTRA) then
    if compact and B[o + ROW.verdict] == 'match' then
      matches[#matches + 1] = eid
    else
      redis.call('XADD', K.verdicts, '*', 'event_id', eid, 'verdict', B[o + ROW.verdict],
                 'record', B[o + ROW.record])
    end
  end
  fresh[#fresh + 1] = made and 1 or 0
end
if #matches > 0 then
  redis.call('XADD', K.verdicts, '*', 'verdict', 'match', 'count', #matches,
             'event_ids', table.concat(matches, ' '))
end
for stream = 1, 2 do
  local ids = acks[stream]
  for j = 1, #ids, 500 do
    redis.call('XACK', streams[stream], A.group, unpack(ids, j, math.min(j + 499, #ids)))
  end
end
return fresh
