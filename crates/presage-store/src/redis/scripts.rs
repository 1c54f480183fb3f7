//! The Lua scripts that change a job's versions atomically.
//!
//! Every key a script touches carries the job's hash tag, so in a cluster all of them
//! live in one slot and the script runs on one node. Manifest keys of versions
//! dropped by retention are built inside the publish script from their prefix (same
//! hash tag, same slot) because which versions go is only known there. Times come
//! from the server (`TIME`), so leases do not depend on the writers' clocks.

use std::sync::LazyLock;

use ::redis::Script;

/// Reserves a version id and records its lease in the staging hash.
///
/// KEYS: next_id, versions, current, staging. ARGV: lease (ms). Returns the id.
pub(crate) static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('INCR', KEYS[1])
-- The counter may have been lost (deleted, restored from an old snapshot): never
-- hand out an id at or below one that exists.
local floor = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local top = redis.call('ZRANGE', KEYS[2], -1, -1)
if #top > 0 and tonumber(top[1]) > floor then floor = tonumber(top[1]) end
for _, staged in ipairs(redis.call('HKEYS', KEYS[4])) do
  local n = tonumber(staged) or 0
  if n > floor then floor = n end
end
if id <= floor then
  id = floor + 1
  redis.call('SET', KEYS[1], id)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[4], id, now + tonumber(ARGV[1]))
return id
",
    )
});

/// Extends a writer's lease; 0 when its entry is gone or marked for deletion.
///
/// KEYS: staging. ARGV: id, lease (ms).
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lease = redis.call('HGET', KEYS[1], ARGV[1])
if not lease or lease == '0' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
return 1
",
    )
});

/// Publishes a staged version: stores its manifest and completeness record, adds it
/// to the versions, flips the pointer, drops it from staging, and hands the versions
/// beyond `keep` over to deletion by marking them `0` in staging (their manifests
/// and records go at once). Neither the new version nor the one it replaces is
/// dropped: servers still read the replaced one until they notice the new pointer,
/// so with `keep = 1` it goes at the next publish.
///
/// KEYS: current, versions, manifest, staging, complete, history. ARGV: id, manifest
/// JSON, the current id the manifest names as parent (`''` for none), keep, manifest
/// key prefix, completeness record JSON, `1` to make the version current (`0` for a
/// backfill), the history entry.
/// Returns `{'ok', dropped ids...}`, `{'moved'}` when the current version changed
/// since the manifest was built, or `{'lost'}` when the staging entry is gone.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lease = redis.call('HGET', KEYS[4], ARGV[1])
if not lease or lease == '0' then return {'lost'} end
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[3] then return {'moved'} end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('HSETNX', KEYS[5], 'since', ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
if ARGV[7] == '1' then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('RPUSH', KEYS[6], ARGV[8])
redis.call('LTRIM', KEYS[6], -1000, -1)
local out = {'ok'}
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local excess = #ids - tonumber(ARGV[4])
for _, old in ipairs(ids) do
  if excess <= 0 then break end
  if old ~= ARGV[1] and old ~= ARGV[3] then
    redis.call('ZREM', KEYS[2], old)
    redis.call('DEL', ARGV[5] .. old)
    redis.call('HDEL', KEYS[5], old)
    redis.call('HSET', KEYS[4], old, '0')
    table.insert(out, old)
    excess = excess - 1
  end
end
return out
",
    )
});

/// Points the pointer at a published version chosen from the history, unless the
/// pointer moved since it was read.
///
/// KEYS: current, versions, history. ARGV: target id, the current id it was chosen
/// against, the history entry. Returns `{'ok'}`, `{'moved'}` or `{'unknown'}`.
pub(crate) static ROLLBACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return {'moved'} end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'unknown'} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], -1000, -1)
return {'ok'}
",
    )
});

/// Extends a run lock's expiry while its holder still owns it.
///
/// KEYS: run lock. ARGV: holder, expiry (ms). Returns 1 when extended.
pub(crate) static EXTEND_RUN_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Releases a run lock its holder still owns.
///
/// KEYS: run lock. ARGV: holder.
pub(crate) static RELEASE_RUN_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Claims the staging entries to delete: those marked `0` and those whose lease has
/// expired (a writer that crashed or stalled), which are marked `0` so their writer,
/// if still alive, can no longer extend or publish them.
///
/// KEYS: staging. Returns the ids.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local deadline = tonumber(all[i + 1]) or 0
  if deadline < now then
    if all[i + 1] ~= '0' then redis.call('HSET', KEYS[1], all[i], '0') end
    table.insert(out, all[i])
  end
end
return out
",
    )
});

/// Forgets staging entries whose keys were deleted (only those still marked `0`).
///
/// KEYS: staging. ARGV: ids.
pub(crate) static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('HGET', KEYS[1], id) == '0' then
    redis.call('HDEL', KEYS[1], id)
    n = n + 1
  end
end
return n
",
    )
});
