/**
 * The Lua scripts of {@linkcode RedisBus} (`redis_bus.ts`): each runs atomically in Redis, which is what
 * the cluster's guarantees rest on (one owner per session and epoch, a dead node claimed once, retained
 * changes in version order, a commit's parts all or none). Their keys are described in `redis_bus.ts`.
 *
 * @module
 */

import type { Redis } from "ioredis";

// KEYS: lease, nodes, claim, generation. ARGV: node, value, ttl, incarnation, new generation. Returns the
// cluster's generation (created by the first join into an empty Redis), or 0.
const JOIN = `
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
local generation = redis.call('GET', KEYS[4])
if not generation then
  generation = ARGV[5]
  redis.call('SET', KEYS[4], generation)
end
return generation`;

// KEYS: lease, nodes, generation. ARGV: node, value, ttl, incarnation, generation. 1 renewed, 0 lapsed
// (taken again), -1 claimed, -2 the cluster's data is gone (another generation: Redis lost or flushed it).
const RENEW = `
if redis.call('GET', KEYS[3]) ~= ARGV[5] then return -2 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[4] then return -1 end
if redis.call('SET', KEYS[1], ARGV[2], 'XX', 'PX', ARGV[3]) then return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 0`;

// A route change of an incarnation still registered. KEYS: routes, nodes. ARGV: node, incarnation, seq
// field, seq, filter, count, channel.
const ROUTE = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[6] == '0' then redis.call('HDEL', KEYS[1], ARGV[5]) else redis.call('HSET', KEYS[1], ARGV[5], ARGV[6]) end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[7], 'R' .. cjson.encode({ARGV[1], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])}))
return 1`;

// Deletes delivered inbox entries, for an incarnation still registered (a claimed node's inbox is its
// claimer's to deliver). KEYS: inbox, nodes. ARGV: node, incarnation, ids...
const DELIVERED = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('XDEL', KEYS[1], unpack(ARGV, 3))`;

const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'PX', 60000)
return 1`;

// KEYS: nodes hash. ARGV: node, lease prefix, routes prefix, inbox prefix, claim prefix, channel.
// Another live node: only the lease goes (it claims this one). The last: it leaves, with the members that
// retired before it (no lease, no claim in progress).
const RETIRE = `
for _, m in ipairs(redis.call('HKEYS', KEYS[1])) do
  if m ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. m) == 1 then
    redis.call('DEL', ARGV[2] .. ARGV[1])
    return 1
  end
end
for _, m in ipairs(redis.call('HKEYS', KEYS[1])) do
  if m == ARGV[1] or redis.call('EXISTS', ARGV[5] .. m) == 0 then
    redis.call('HDEL', KEYS[1], m)
    redis.call('DEL', ARGV[2] .. m, ARGV[3] .. m, ARGV[4] .. m, ARGV[5] .. m)
    redis.call('PUBLISH', ARGV[6], 'D' .. m)
  end
end
return 0`;

// KEYS: retained, version, expiry (sorted set: topic by expiry). ARGV: topic, record, channel, expiry.
const RETAIN = `
local v = redis.call('INCR', KEYS[2])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if ARGV[2] == '' or ARGV[4] == '0' then redis.call('ZREM', KEYS[3], ARGV[1])
else redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
redis.call('PUBLISH', ARGV[3], 'T' .. v .. '\\0' .. ARGV[1] .. '\\0' .. ARGV[2])
return v`;

// KEYS: retained, version, expiry. ARGV: now, channel.
const EXPIRE_RETAINED = `
local topics = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, 256)
for _, topic in ipairs(topics) do
  local v = redis.call('INCR', KEYS[2])
  redis.call('HDEL', KEYS[1], topic)
  redis.call('ZREM', KEYS[3], topic)
  redis.call('PUBLISH', ARGV[2], 'T' .. v .. '\\0' .. topic .. '\\0')
end
return #topics`;

// KEYS: owner, session, nodes hash. ARGV: node, lease prefix, clean, record, sessions-set prefix, client id,
// claim prefix (a dead node registered or being claimed: wait), incarnation of the claiming node.
const CLAIM_SESSION = `
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[8] then
  return redis.error_reply('FENCED this node was claimed by another node: it must join again')
end
local previous = redis.call('HGET', KEYS[1], 'node')
local alive = 0
if previous then
  alive = redis.call('EXISTS', ARGV[2] .. previous)
  if alive == 0 and previous ~= ARGV[1] and
    (redis.call('HEXISTS', KEYS[3], previous) == 1 or redis.call('EXISTS', ARGV[7] .. previous) == 1) then
    return {previous, 0, 0, {}, 1}
  end
  -- A live previous owner keeps the id in its set until it hands the session over: if it dies first,
  -- its claimer adopts the session (see 'pending') and this claim is made again from there.
  if alive == 0 or previous == ARGV[1] then redis.call('SREM', ARGV[5] .. previous, ARGV[6]) end
end
local previousEpoch = redis.call('HGET', KEYS[1], 'epoch')
local previousSince = redis.call('HGET', KEYS[1], 'since') or previousEpoch
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[1])
-- Since which epoch this node has owned the session without a break: its writes made under any epoch of
-- that run still count (a commit under way while it claims the id again for a new connection).
if previous ~= ARGV[1] or ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'since', epoch) end
local handoff = previous and previous ~= ARGV[1] and alive == 1
-- Until it hands the session over, the live previous owner still stores what it does with it, under its
-- own epochs: if this node dies before it reads the handoff, its claimer adopts the session whole.
if handoff then
  redis.call('HSET', KEYS[1], 'pending', previous, 'pendingEpoch', previousEpoch, 'pendingSince', previousSince)
else redis.call('HDEL', KEYS[1], 'pending', 'pendingEpoch', 'pendingSince') end
redis.call('SADD', ARGV[5] .. ARGV[1], ARGV[6])
local stored = {}
-- A clean start discards the stored session, but not before a live owner's handoff: until then the record is
-- the previous connection's, with its will (sent by that owner, or by its claimer if it dies first).
if ARGV[3] == '1' then
  if not handoff then redis.call('DEL', KEYS[2]) end
elseif previous and previous ~= ARGV[1] and alive == 0 then stored = redis.call('HGETALL', KEYS[2]) end
-- Until the handoff, the stored record stays the previous connection's (its will, if that node dies).
if not handoff then redis.call('HSET', KEYS[2], 'c', ARGV[4]) end
-- A session to be handed over: its filters (the claimer's routes for them go first).
local filters = {}
if handoff and ARGV[3] ~= '1' then
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    if string.byte(field, 1) == 115 and string.byte(field, 2) == 0 then table.insert(filters, string.sub(field, 3)) end
  end
end
return {previous or '', alive, epoch, stored, 0, filters}`;

// KEYS: owner, session, sessions set of the node. ARGV: node, epoch, client id.
const END_SESSION = `
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[3])
end
return 1`;

// KEYS: owner, session. ARGV: node, epoch, then op, field, value triples ('F': handed over from the
// node whose sessions set is the field, for the client id in the value; 'R': every field deleted but
// those starting with the field).
const STORE_SESSION = `
local owner = redis.call('HMGET', KEYS[1], 'node', 'epoch', 'pending', 'pendingEpoch', 'since', 'pendingSince')
local epoch = tonumber(ARGV[2])
local function within(last, since) return last and epoch <= tonumber(last) and epoch >= tonumber(since or last) end
if not ((owner[1] == ARGV[1] and within(owner[2], owner[5])) or (owner[3] == ARGV[1] and within(owner[4], owner[6]))) then
  return 0
end
for i = 3, #ARGV, 3 do
  if ARGV[i] == 'D' then redis.call('DEL', KEYS[2])
  elseif ARGV[i] == 'R' then
    local keep = ARGV[i + 1]
    for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
      if string.sub(field, 1, #keep) ~= keep then redis.call('HDEL', KEYS[2], field) end
    end
  elseif ARGV[i] == 'F' then
    redis.call('HDEL', KEYS[1], 'pending', 'pendingEpoch', 'pendingSince')
    redis.call('SREM', ARGV[i + 1], ARGV[i + 2])
  elseif ARGV[i] == 'S' then redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  else redis.call('HDEL', KEYS[2], ARGV[i + 1]) end
end
return 1`;

// KEYS: sessions set of the dead node, of the adopter. ARGV: dead, adopter, owner prefix, session prefix,
// sessions-set prefix. A session claimed from the dead node but not handed over yet ('pending') is
// adopted too: the claiming node sees it lost it and claims it again, from the adopter.
const ADOPT_SESSIONS = `
local adopted = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local owner = ARGV[3] .. id
  local node = redis.call('HGET', owner, 'node')
  if node == ARGV[1] or redis.call('HGET', owner, 'pending') == ARGV[1] then
    if node ~= ARGV[1] then redis.call('SREM', ARGV[5] .. node, id) end
    redis.call('HDEL', owner, 'pending', 'pendingEpoch', 'pendingSince')
    local epoch = redis.call('HINCRBY', owner, 'epoch', 1)
    redis.call('HSET', owner, 'node', ARGV[2], 'since', epoch)
    redis.call('SADD', KEYS[2], id)
    table.insert(adopted, {id, epoch, redis.call('HGETALL', ARGV[4] .. id)})
  end
end
redis.call('DEL', KEYS[1])
return adopted`;

const SET_ASIDE = `
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return 1`;

/** A Redis connection with the scripts defined as commands (see {@linkcode defineScripts}). */
export type ScriptedRedis = Redis & {
  clusterClaimSession(
    ...args: (string | number)[]
  ): Promise<[string, number, number, string[], number, string[] | undefined]>;
  clusterAdoptSessions(...args: (string | number)[]): Promise<[string, number, string[]][]>;
  clusterSetAside(...args: (string | number)[]): Promise<number>;
  clusterJoin(...args: (string | number)[]): Promise<number | string>;
  clusterRenew(...args: (string | number)[]): Promise<number>;
  clusterClaim(...args: (string | number)[]): Promise<number>;
  clusterRetire(...args: (string | number)[]): Promise<number>;
  clusterRoute(...args: (string | number)[]): Promise<number>;
  clusterDelivered(...args: (string | number)[]): Promise<number>;
  clusterExpireRetained(...args: (string | number)[]): Promise<number>;
};

/**
 * Defines the scripts as commands of a connection (nothing is sent before a command is called).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Redis } from "ioredis";
 * import { defineScripts, type ScriptedRedis } from "./redis_scripts.ts";
 *
 * const redis = new Redis({ lazyConnect: true });
 * defineScripts(redis);
 * assert.equal(typeof (redis as ScriptedRedis).clusterClaimSession, "function");
 * redis.disconnect();
 * ```
 *
 * @param redis The connection.
 */
export function defineScripts(redis: Redis): void {
  redis.defineCommand("clusterJoin", { numberOfKeys: 4, lua: JOIN });
  redis.defineCommand("clusterRenew", { numberOfKeys: 3, lua: RENEW });
  redis.defineCommand("clusterClaim", { numberOfKeys: 3, lua: CLAIM });
  redis.defineCommand("clusterRetire", { numberOfKeys: 1, lua: RETIRE });
  redis.defineCommand("clusterRetain", { numberOfKeys: 3, lua: RETAIN });
  redis.defineCommand("clusterExpireRetained", { numberOfKeys: 3, lua: EXPIRE_RETAINED });
  redis.defineCommand("clusterClaimSession", { numberOfKeys: 3, lua: CLAIM_SESSION });
  redis.defineCommand("clusterEndSession", { numberOfKeys: 3, lua: END_SESSION });
  redis.defineCommand("clusterStoreSession", { numberOfKeys: 2, lua: STORE_SESSION });
  redis.defineCommand("clusterAdoptSessions", { numberOfKeys: 2, lua: ADOPT_SESSIONS });
  redis.defineCommand("clusterSetAside", { numberOfKeys: 2, lua: SET_ASIDE });
  redis.defineCommand("clusterRoute", { numberOfKeys: 2, lua: ROUTE });
  redis.defineCommand("clusterDelivered", { numberOfKeys: 2, lua: DELIVERED });
}
