//! `RedisStore`'s own checks that need no Redis: the script's calling
//! convention, reading its replies, URLs and bad asks.

use super::*;
use std::sync::Arc;

fn ask(resource: &str) -> Ask {
    Ask {
        resource: resource.into(),
        member: "pod-1/7".into(),
        capacity: 100,
        target: 40,
        in_force: 30,
        ttl: Duration::from_millis(1500),
        wants: "{\"t\":1}".into(),
    }
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

#[test]
fn keys_share_the_resource_hash_tag() {
    assert_eq!(
        LeaseScript::keys("db"),
        ["{prescient:db}:leases", "{prescient:db}:wants"]
    );
}

#[test]
fn args_are_in_the_order_the_script_reads_them() {
    assert_eq!(
        LeaseScript::args(&ask("db")),
        ["pod-1/7", "100", "40", "30", "1500", "{\"t\":1}"]
    );
}

#[test]
fn reply_reads_the_numbers_and_sorts_the_wants_by_member() {
    let value = Value::Array(vec![
        Value::Int(40),
        Value::Int(1_700_000_000_123),
        Value::Int(60),
        bulk("b"),
        bulk("wb"),
        bulk("a"),
        bulk("wa"),
    ]);
    let reply = LeaseScript::reply("db", value).unwrap();
    assert_eq!(
        reply,
        Reply {
            grant: 40,
            now_ms: 1_700_000_000_123,
            others: 60,
            wants: vec![("a".into(), "wa".into()), ("b".into(), "wb".into())],
        }
    );
}

#[test]
fn a_reply_the_script_does_not_give_is_an_error_naming_the_resource() {
    let cases = [
        (Value::Nil, "not the script's reply"),
        (
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            "not the script's reply",
        ),
        (
            Value::Array(vec![Value::Int(-1), Value::Int(2), Value::Int(3)]),
            "grant is -1",
        ),
        (
            Value::Array(vec![Value::Int(1), bulk("x"), Value::Int(3)]),
            "now_ms is not an integer",
        ),
        (
            Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(4),
                bulk("w"),
            ]),
            "a member is not a string",
        ),
        (
            Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                bulk("m"),
                Value::BulkString(vec![0xff]),
            ]),
            "a wants is not UTF-8",
        ),
    ];
    for (value, expected) in cases {
        let message = LeaseScript::reply("db", value).unwrap_err().to_string();
        assert!(
            message.starts_with("lease store: resource \"db\": "),
            "{message}"
        );
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn a_url_that_cannot_be_used_is_an_error_naming_the_setting() {
    for url in ["", "http://localhost:6379", "redis://"] {
        let error = RedisStore::new(url, Duration::from_secs(1)).err().unwrap();
        assert!(
            error.to_string().starts_with("cluster.redis_url: "),
            "{url}: {error}"
        );
    }
}

#[test]
fn a_cluster_takes_one_or_more_node_urls_and_names_the_setting_for_a_bad_one() {
    let timeout = Duration::from_secs(1);
    for nodes in [
        "redis://10.0.0.1:6379",
        "redis://a:1, redis://b:2,redis://c:3",
    ] {
        assert!(
            RedisStore::open(RedisType::Cluster, nodes, timeout).is_ok(),
            "{nodes}"
        );
    }
    for nodes in ["", "redis://a:1,http://b:2", "redis://a:1,"] {
        let error = RedisStore::open(RedisType::Cluster, nodes, timeout).err();
        let error = error
            .unwrap_or_else(|| panic!("{nodes:?} accepted"))
            .to_string();
        assert!(error.starts_with("cluster.redis_url: "), "{nodes}: {error}");
    }
    let error = RedisStore::open(RedisType::Single, "redis://a:1,redis://b:2", timeout)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("cluster.redis_type: cluster"), "{error}");
}

#[test]
fn the_url_is_not_repeated_in_the_error_it_may_hold_a_password() {
    let error = RedisStore::new("http://:hunter2@localhost", Duration::from_secs(1)).err();
    assert!(!error.unwrap().to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_redis_fails_each_exchange_at_once_not_at_the_timeout() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let timeout = Duration::from_secs(60);
    let store = RedisStore::new("redis://127.0.0.1:1", timeout).unwrap();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let error = store.exchange(&[ask("db")]).await.unwrap_err();
        assert!(matches!(error, StoreError::Redis(_)), "{error}");
        // Generous for a refused loopback connect; retries in backoff
        // take longer.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{error} after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_bad_ask_is_refused_before_anything_is_sent() {
    let store = RedisStore::new("redis://127.0.0.1:1", Duration::from_millis(200)).unwrap();
    let bad = Ask {
        member: Arc::from("~recovering"),
        ..ask("db")
    };
    let error = store.exchange(&[ask("a"), bad]).await.unwrap_err();
    assert!(matches!(error, StoreError::Ask(_)), "{error}");
    assert!(
        error.to_string().contains("member: \"~recovering\""),
        "{error}"
    );
    assert_eq!(store.exchange(&[]).await.unwrap(), Vec::new());
}
