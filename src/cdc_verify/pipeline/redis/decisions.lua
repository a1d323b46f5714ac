-- Generations: where decisions of event_ids that are no ULIDs are kept (decisions.py).
-- Both scripts that touch them, the commit (commit.lua) and the lookup (decisions.py's
-- LOOKUP_SCRIPT), begin with this file: it is the one home of the rule.
--
-- A generation covers [start, stop) of the decisions' first-seen time (entry-id ms) and
-- keeps them in `shards` hashes, `<prefix>g<start>:<crc32(event_id) % shards>`, each a
-- listpack while it holds at most 128 fields. The registry (a hash, start -> "stop shards
-- count lo hi keep", keep: when its hashes go) lists them: a generation's shard count is
-- chosen once, when it opens, from the decisions per ms its neighbour held, and never
-- changes. New ones open on a grid of a quarter of --decided-retention, clipped to their
-- neighbours (a grid changed with the retention never overlaps the old one). One whose
-- hashes hold GEN_SPLIT fields on average is split at the newest decision it holds:
-- later ones go to a new generation with more shards, so the first generation (no
-- neighbour to learn from) and a rate that grows find their size within a few.

local GEN_FILL = 80  -- the fields per hash a new generation is sized for (Redis: <= 128)
local GEN_SPLIT = 90  -- the average at which a generation stops taking newer decisions:
-- then all but one hash in 15,000 hold at most 128 fields (at 100, one in 330 would not)
local GEN_MAX_SHARDS = 1048576
local GEN_GRID_PARTS = 4  -- generations per --decided-retention
-- How far a decision's first-seen time may lie past the time of an entry of its event
-- that is looked up: the two streams' clocks may differ (docs/topology.md, "Clock skew").
local GEN_CLOCK_MARGIN_MS = 60000

-- When a hash of decisions may go (a ULID's second's or a generation's): --decided-retention
-- after the end of the span it covers, or after now for a clock far behind; no longer
-- than twice that for one from the far future.
local function hash_expire_at(stop_ms, now_ms, retention_ms)
  return math.min(math.max(stop_ms, now_ms), now_ms + retention_ms) + retention_ms
end

-- The registry's generations, oldest first; `prefix` + "g<start>:" names their hashes.
local function gen_load(registry, prefix)
  local flat, gens = redis.call('HGETALL', registry), {}
  for i = 1, #flat, 2 do
    local stop, shards, count, lo, hi, keep = string.match(
      flat[i + 1], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
    if stop then
      table.insert(gens, {
        name = flat[i], start = tonumber(flat[i]), stop = tonumber(stop),
        shards = tonumber(shards), count = tonumber(count), lo = tonumber(lo),
        hi = tonumber(hi), keep = tonumber(keep), dirty = false, pending = 0,
        prefix = prefix .. 'g' .. flat[i] .. ':',
      })
    end
  end
  table.sort(gens, function(a, b) return a.start < b.start end)
  return gens
end

local function gen_bucket(g, h)
  return g.prefix .. (h % g.shards)  -- an integral number concatenates as "12"
end

local function gen_covering(gens, t)
  for _, g in ipairs(gens) do
    if g.start <= t and t < g.stop then return g end
  end
  return nil
end

-- The decision of `eid` (shard hash `h`) with an entry at `at_ms` ('' = at any time), or
-- false: it is in the generations within --decided-retention before that entry (older
-- ones are forgotten) and the clock margin after it.
local function gen_find(gens, eid, h, at_ms, retention_ms)
  local lo, hi = -math.huge, math.huge
  if at_ms ~= '' then
    at_ms = tonumber(at_ms)
    lo, hi = at_ms - retention_ms - GEN_CLOCK_MARGIN_MS, at_ms + GEN_CLOCK_MARGIN_MS
  end
  for i = #gens, 1, -1 do  -- newest first: a duplicate is most often recent
    local g = gens[i]
    if g.start <= hi and g.stop > lo then
      local value = redis.call('HGET', g.prefix .. (h % g.shards), eid)
      if value then return value end
    end
  end
  return false
end

local function gen_shards(model, span, at_least, count)
  local per_ms = count / math.max(model.hi - model.lo + 1, 1000)
  return math.min(GEN_MAX_SHARDS, math.max(at_least, math.ceil(per_ms * span / GEN_FILL)))
end

local function gen_add(gens, g, prefix)
  g.name, g.dirty = string.format('%d', g.start), true
  g.prefix = prefix .. 'g' .. g.name .. ':'
  table.insert(gens, g)
  table.sort(gens, function(a, b) return a.start < b.start end)
  return g
end

-- The generation a new decision first seen at `t` goes to: the one that covers t, unless
-- full and t is newer than all it holds; else a new one. Its span [lo, hi] takes t in
-- (a split must leave behind every decision it may hold); its count is the caller's
-- (what it wrote), `pending` what this call may add.
local function gen_for_new(gens, t, retention_ms, prefix)
  local g = gen_covering(gens, t)
  if g and g.count + g.pending >= g.shards * GEN_SPLIT and t > g.hi then
    local new = {start = g.hi + 1, stop = g.stop, count = 0, lo = t, hi = t, keep = 0,
                 pending = 0}
    new.shards = gen_shards(g, g.stop - new.start, 2 * g.shards, g.count + g.pending)
    g.stop, g.dirty = new.start, true
    g = gen_add(gens, new, prefix)
  elseif not g then
    local grid = math.max(1000, math.floor(retention_ms / GEN_GRID_PARTS))
    local start = math.floor(t / grid) * grid
    local stop = start + grid
    local before, after = nil, nil
    for _, x in ipairs(gens) do
      if x.stop <= t then
        start, before = math.max(start, x.stop), x
      elseif x.start > t and not after then
        stop, after = math.min(stop, x.start), x
      end
    end
    local model = before or after
    local shards = model and gen_shards(model, stop - start, 1, model.count) or 1
    g = gen_add(gens, {start = start, stop = stop, shards = shards, count = 0, lo = t, hi = t,
                       keep = 0, pending = 0}, prefix)
  end
  g.pending, g.lo, g.hi, g.dirty = g.pending + 1, math.min(g.lo, t), math.max(g.hi, t), true
  return g
end

-- Writes back what changed, drops generations whose hashes are gone, and keeps the
-- registry as long as its newest generation.
local function gen_save(registry, gens, now_ms)
  local last = 0
  for _, g in ipairs(gens) do
    if g.keep > 0 and g.keep < now_ms then
      redis.call('HDEL', registry, g.name)
    else
      if g.dirty then
        redis.call('HSET', registry, g.name, string.format('%d %d %d %d %d %d',
          g.stop, g.shards, g.count, g.lo, g.hi, g.keep))
      end
      last = math.max(last, g.keep)
    end
  end
  if last > 0 then redis.call('PEXPIREAT', registry, string.format('%d', last)) end
end
