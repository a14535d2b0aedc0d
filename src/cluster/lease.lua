-- The lease store's allocation for one resource, one atomic call per Ask
-- (docs/distributed.md, "Protocol"; MemoryStore in store.rs is the same
-- steps in Rust, and tests/lease_script.rs holds the two equal).
-- Redis 5+ / Valkey, Lua 5.1: locals only; redis.call only on KEYS.
--
-- KEYS[1]  leases hash: member -> "<lease>:<expires_ms>"
-- KEYS[2]  wants hash:  member -> the member's wants (opaque)
-- ARGV     member, capacity, target, in_force, ttl_ms, wants
-- Returns  {grant, now_ms, others, member, wants, member, wants, ...}

-- TIME before writes: effects replication (the default from Redis 5 on).
if redis.replicate_commands then redis.replicate_commands() end

local leases, wants = KEYS[1], KEYS[2]
local member = ARGV[1]
local capacity = tonumber(ARGV[2])
local target = tonumber(ARGV[3])
local in_force = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
-- The recovery deadline, kept as a lease of 0 so it expires like one.
local RECOVERING = '~recovering'

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local existed = redis.call('EXISTS', leases) == 1

-- 1. Drop expired members (and unreadable entries) from both hashes;
-- 2. sum the others' leases.
local others, recovering = 0, false
local stored = redis.call('HGETALL', leases)
for i = 1, #stored, 2 do
  local name, value = stored[i], stored[i + 1]
  local colon = string.find(value, ':', 1, true)
  local lease = colon and tonumber(string.sub(value, 1, colon - 1))
  local expires = colon and tonumber(string.sub(value, colon + 1))
  if not lease or not expires or expires <= now then
    redis.call('HDEL', leases, name)
    redis.call('HDEL', wants, name)
  elseif name == RECOVERING then
    recovering = true
  elseif name ~= member then
    others = others + lease
  end
end

-- 3. No leases hash: the store is new or lost its data, and daemons may
-- still enforce leases it no longer knows; for one ttl, grant no one more
-- than it already enforces.
if not existed then
  recovering = true
  redis.call('HSET', leases, RECOVERING, string.format('0:%d', now + ttl))
end

-- 4. The grant.
local grant = math.min(target, math.max(capacity - others, 0))
if recovering then grant = math.min(grant, in_force) end

-- 5. The caller enforces in_force until it applies the grant.
local held = math.max(grant, in_force)
redis.call('HSET', leases, member, string.format('%d:%d', held, now + ttl))
redis.call('HSET', wants, member, ARGV[6])
redis.call('PEXPIRE', leases, 10 * ttl)
redis.call('PEXPIRE', wants, 10 * ttl)

-- 6. The answer.
local reply = {grant, now, others}
local all = redis.call('HGETALL', wants)
for i = 1, #all do reply[3 + i] = all[i] end
return reply
