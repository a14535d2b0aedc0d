//! `lease.lua` run in process (Lua 5.1, as in Redis) over a small emulation
//! of the Redis commands it uses, against `MemoryStore`: random members
//! asking, time passing expiries, the store wiped. Both must give the same
//! reply at every step, and the leases stay within capacity while the
//! daemons behave (each enforces at most its last grant, until its lease
//! ends).

use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, Table, Value as LuaValue};
use prescient::cluster::redis::LeaseScript;
use prescient::cluster::store::{Ask, MemoryStore, Reply};
use proptest::prelude::*;
use redis::Value;

/// Redis's side of the script's calls: each command it uses, with Redis's
/// semantics (a key expires once the clock is past its deadline; a hash
/// with no field is no key; numbers are sent as `%.17g` strings), over a Lua
/// table, the clock injected. Any other command, a key the call did not
/// pass, or a global variable the script creates or reads fails, as in
/// Redis 7.
const EMULATOR: &str = r#"
local keys, now, passed = {}, 0, {}

local function live(key)
  local entry = keys[key]
  if entry and entry.expire_at and now > entry.expire_at then
    keys[key] = nil
    return nil
  end
  return entry
end

local commands = {}
function commands.TIME()
  return {tostring(math.floor(now / 1000)), tostring((now % 1000) * 1000)}
end
function commands.EXISTS(key)
  if live(key) then return 1 end
  return 0
end
function commands.HGETALL(key)
  local entry, out = live(key), {}
  if entry then
    for field, value in pairs(entry.fields) do
      out[#out + 1] = field
      out[#out + 1] = value
    end
  end
  return out
end
function commands.HSET(key, field, value)
  local entry = live(key)
  if not entry then
    entry = {fields = {}}
    keys[key] = entry
  end
  local added = entry.fields[field] == nil
  entry.fields[field] = value
  if added then return 1 end
  return 0
end
function commands.HDEL(key, field)
  local entry = live(key)
  if not entry or entry.fields[field] == nil then return 0 end
  entry.fields[field] = nil
  if next(entry.fields) == nil then keys[key] = nil end
  return 1
end
function commands.PEXPIRE(key, ms)
  local entry = live(key)
  if not entry then return 0 end
  entry.expire_at = now + tonumber(ms)
  return 1
end
local keyless = {TIME = true}

redis = {
  call = function(name, ...)
    local command = commands[name]
    if not command then error('unknown command ' .. tostring(name)) end
    local args = {...}
    for i = 1, select('#', ...) do
      local t = type(args[i])
      if t ~= 'string' and t ~= 'number' then
        error('Lua redis() command arguments must be strings or integers')
      end
      if t == 'number' then args[i] = string.format('%.17g', args[i]) end
    end
    if not keyless[name] and not passed[args[1]] then
      error(name .. ' on a key not in KEYS: ' .. tostring(args[1]))
    end
    return command(unpack(args))
  end,
  replicate_commands = function() return true end,
}

function run(script, t, keys_passed, argv)
  now = t
  passed = {[keys_passed[1]] = true, [keys_passed[2]] = true}
  rawset(_G, 'KEYS', keys_passed)
  rawset(_G, 'ARGV', argv)
  return script()
end

function wipe()
  keys = {}
end

-- Σ of the unexpired leases in a leases hash (the store's invariant).
function held(key, t)
  now = t
  local entry, sum = live(key), 0
  if entry then
    for _, value in pairs(entry.fields) do
      local lease, expires = string.match(value, '^(%d+):(%d+)$')
      if tonumber(expires) > t then sum = sum + tonumber(lease) end
    end
  end
  return sum
end

setmetatable(_G, {
  __newindex = function(_, name)
    error("Script attempted to create global variable '" .. tostring(name) .. "'")
  end,
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'")
  end,
})
"#;

/// The script in an emulated Redis.
struct Emulated {
    lua: Lua,
    script: Function,
}

impl Emulated {
    fn new() -> Self {
        let lua = Lua::new();
        lua.load(EMULATOR).set_name("emulator").exec().unwrap();
        let script = lua
            .load(LeaseScript::SOURCE)
            .set_name("lease.lua")
            .into_function()
            .unwrap();
        Self { lua, script }
    }

    fn function(&self, name: &str) -> Function {
        self.lua.globals().raw_get(name).unwrap()
    }

    fn exchange(&self, ask: &Ask, now_ms: u64) -> Reply {
        let keys = LeaseScript::keys(&ask.resource);
        let args = LeaseScript::args(ask);
        let result: LuaValue = self
            .function("run")
            .call((&self.script, now_ms, keys, args))
            .unwrap_or_else(|e| panic!("lease.lua failed: {e}"));
        LeaseScript::reply(&ask.resource, to_redis(result)).unwrap()
    }

    fn wipe(&self) {
        self.function("wipe").call::<()>(()).unwrap();
    }

    fn held(&self, resource: &str, now_ms: u64) -> u64 {
        let [leases, _] = LeaseScript::keys(resource);
        self.function("held").call((leases, now_ms)).unwrap()
    }
}

/// A Lua value as Redis returns it: numbers truncated to integers, strings
/// as bulk strings, a table as the array of its values up to the first nil.
fn to_redis(value: LuaValue) -> Value {
    match value {
        LuaValue::Integer(n) => Value::Int(n),
        LuaValue::Number(n) => Value::Int(n as i64),
        LuaValue::String(s) => Value::BulkString(s.as_bytes().to_vec()),
        LuaValue::Table(table) => Value::Array(sequence(&table)),
        LuaValue::Nil => Value::Nil,
        other => panic!("Redis has no reply for {other:?}"),
    }
}

fn sequence(table: &Table) -> Vec<Value> {
    table
        .clone()
        .sequence_values::<LuaValue>()
        .map(|v| to_redis(v.unwrap()))
        .collect()
}

const RESOURCE: &str = "db";
const MEMBERS: usize = 5;
const START_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// A daemon lowers what it enforces to `keep`% and asks for `target`;
    /// with `lost`, the store answers but the reply never reaches it.
    Ask {
        daemon: usize,
        target: u64,
        keep: u64,
        lost: bool,
    },
    /// Time passes: `ms`, or `permille` of the ttl.
    AdvanceMs(u64),
    AdvancePermille(u64),
    /// The store restarts empty.
    Wipe,
    /// A daemon's process restarts: a new member, enforcing nothing.
    Restart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let keep = prop_oneof![3 => Just(100u64), 1 => 0u64..=100];
    let lost = proptest::bool::weighted(0.1);
    prop_oneof![
        8 => (0..MEMBERS, 0u64..=150, keep, lost)
            .prop_map(|(daemon, target, keep, lost)| Op::Ask { daemon, target, keep, lost }),
        2 => (0u64..=3).prop_map(Op::AdvanceMs),
        3 => prop_oneof![0u64..=1500, Just(1000), Just(10_000), 9_900u64..=10_100]
            .prop_map(Op::AdvancePermille),
        1 => Just(Op::Wipe),
        1 => (0..MEMBERS).prop_map(Op::Restart),
    ]
}

/// What an honest daemon enforces: its last grant (lowered before asking)
/// until its lease ends, `ttl` after it sent the ask that got it.
#[derive(Debug, Default, Clone)]
struct Daemon {
    nonce: u32,
    current: u64,
    expires_ms: u64,
}

impl Daemon {
    fn in_force(&self, now_ms: u64) -> u64 {
        if now_ms < self.expires_ms {
            self.current
        } else {
            0
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn script_and_memory_store_agree_and_leases_stay_within_capacity(
        capacity in 1u64..=100,
        ttl_ms in 1u64..=1_000,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let script = Emulated::new();
        let mut memory = MemoryStore::new();
        let mut daemons = vec![Daemon::default(); MEMBERS];
        let mut now = START_MS;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Ask { daemon, target, keep, lost } => {
                    let d = &mut daemons[daemon];
                    let in_force = d.in_force(now) * keep / 100;
                    d.current = in_force;
                    let ask = Ask {
                        resource: Arc::from(RESOURCE),
                        member: Arc::from(format!("d{daemon}/{}", d.nonce)),
                        capacity,
                        target,
                        in_force,
                        ttl: Duration::from_millis(ttl_ms),
                        wants: format!("{{\"step\":{step}}}"),
                    };
                    let expected = memory.exchange(&ask, now);
                    let got = script.exchange(&ask, now);
                    prop_assert_eq!(&got, &expected, "step {}: {:?}", step, op);
                    prop_assert!(got.grant <= target);
                    prop_assert!(got.grant <= capacity.saturating_sub(got.others));
                    prop_assert!(got.wants.iter().any(|(m, _)| *m == *ask.member));
                    if !lost {
                        d.current = got.grant;
                        d.expires_ms = now + ttl_ms;
                    }
                }
                Op::AdvanceMs(ms) => now += ms,
                Op::AdvancePermille(permille) => now += ttl_ms * permille / 1000,
                Op::Wipe => {
                    memory.wipe();
                    script.wipe();
                }
                Op::Restart(daemon) => {
                    let d = &mut daemons[daemon];
                    *d = Daemon { nonce: d.nonce + 1, ..Daemon::default() };
                }
            }
            let stored = memory.held(RESOURCE, now);
            prop_assert_eq!(script.held(RESOURCE, now), stored, "step {}", step);
            prop_assert!(stored <= capacity, "step {}: {} stored > {}", step, stored, capacity);
            let enforced: u64 = daemons.iter().map(|d| d.in_force(now)).sum();
            prop_assert!(
                enforced <= capacity,
                "step {}: {} enforced > {}", step, enforced, capacity
            );
        }
    }
}

#[test]
fn the_emulator_refuses_what_redis_refuses() {
    let lua = Emulated::new();
    let run = |source: &str| {
        let f = lua.lua.load(source).into_function().unwrap();
        lua.function("run")
            .call::<LuaValue>((f, 0, ["a", "b"], Vec::<String>::new()))
            .map(|_| ())
    };
    assert!(run("return redis.call('HGETALL', KEYS[1])").is_ok());
    for bad in [
        "x = 1",
        "return undefined_name",
        "return redis.call('HGETALL', 'c')",
        "return redis.call('DEL', KEYS[1])",
        "return redis.call('HSET', KEYS[1], 'f', {})",
    ] {
        assert!(run(bad).is_err(), "{bad} ran");
    }
}
