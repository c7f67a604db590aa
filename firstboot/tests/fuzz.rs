//! Property tests of every parser of metadata: whatever the input, no panic, a bounded time
//! (each case well under a second), and a refused value is refused by the name of its key.
//! Case counts are kept small so `cargo test -p axoha-firstboot` stays quick; raise
//! `PROPTEST_CASES` for a longer run.

use std::time::{Duration, Instant};

use axoha_firstboot::config::check_values;
use axoha_firstboot::metadata::parse;
use axoha_firstboot::metadata::{Key, RawMetadata, Resolved, Source};
use axoha_firstboot::types::{
    AdvertInt, DnsServers, Gateway, HealthCommand, Hostname, InterfaceName, IpNet, NtpServers,
    Peers, Ports, Priority, Vrid,
};
use proptest::prelude::*;

const LIMIT: Duration = Duration::from_secs(1);

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Runs `f`, failing the case if it took a second or more.
fn timed<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
    out
}

/// Metadata-ish text: the characters the formats care about, plus anything.
fn texty() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec![
                "[", "]", "{", "}", ":", " ", "\n", "  ", "- ", "\"", "'", "#", "=", ",",
                "axoha:", "axoha.", "vrid", "peers", "&a ", "*a", "!!str ", "\\", "\u{1b}",
                "0x1f", "1.5", "true", "~", "[health]", "\"\"\"",
            ])
            .prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

/// A value of any kind, as JSON: what a file may put under a key.
fn any_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        ".{0,80}".prop_map(serde_json::Value::from),
        "[0-9./:a-f,]{0,40}".prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        4 => leaf.clone(),
        1 => prop::collection::vec(leaf, 0..4).prop_map(serde_json::Value::from),
    ]
}

fn any_key() -> impl Strategy<Value = Key> {
    prop::sample::select(Key::ALL.to_vec())
}

/// `{"axoha": {KEY: VALUE}}`, with `health.x` and `firewall.x` as nested tables.
fn mapping(key: Key, value: serde_json::Value) -> serde_json::Value {
    let inner = match key.name().split_once('.') {
        Some((table, field)) => serde_json::json!({ table: { field: value } }),
        None => serde_json::json!({ key.name(): value }),
    };
    serde_json::json!({ "axoha": inner })
}

/// A refusal, at parsing or typing, names `key`.
fn refused_by_name(
    key: Key,
    source: Source,
    parsed: anyhow::Result<std::collections::BTreeMap<Key, String>>,
) {
    let values = match parsed {
        Err(e) => {
            let e = format!("{e:#}");
            assert!(e.contains(key.name()), "{key}: {e}");
            return;
        }
        Ok(v) => v,
    };
    let resolved = Resolved::merge([RawMetadata { source, values }]);
    if let Err(p) = check_values(&resolved) {
        let p = p.to_string();
        assert!(p.contains(key.name()), "{key}: {p}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cmdline_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = timed(|| parse::cmdline(&bytes));
    }

    #[test]
    fn cmdline_values_are_refused_by_name(
        key in any_key().prop_filter("on the command line", |k| k.allowed_on_cmdline()),
        value in "[^ \t\n\r\x0b\x0c\"]{0,60}",
    ) {
        let line = format!("quiet axoha.{key}={value} console=ttyS0");
        timed(|| refused_by_name(key, Source::Cmdline, parse::cmdline(line.as_bytes())));
    }

    #[test]
    fn nocloud_text_never_panics(text in texty()) {
        let _ = timed(|| parse::bounded_text(text.into_bytes()).and_then(|t| parse::nocloud(&t)));
    }

    #[test]
    fn instance_data_text_never_panics(text in texty()) {
        let _ = timed(|| {
            parse::bounded_text(text.into_bytes()).and_then(|t| parse::instance_data(&t))
        });
    }

    #[test]
    fn cluster_toml_text_never_panics(text in texty()) {
        let _ = timed(|| {
            parse::bounded_text(text.into_bytes()).and_then(|t| parse::cluster_toml(&t))
        });
    }

    /// The same key and value in all three file formats: each refusal names the key.
    #[test]
    fn file_values_are_refused_by_name(key in any_key(), value in any_value()) {
        let doc = mapping(key, value);
        // serde_yaml_ng writes what YAML forbids raw (DEL, C1 controls) as escapes; a
        // document that is not YAML at all names no key, and that is not this property.
        let yaml = serde_yaml_ng::to_string(&doc).unwrap();
        timed(|| refused_by_name(key, Source::NoCloud, parse::nocloud(&yaml)));
        let instance = serde_json::json!({ "ds": { "meta_data": doc.clone() } }).to_string();
        timed(|| refused_by_name(key, Source::InstanceData, parse::instance_data(&instance)));
        if let Ok(toml) = toml::to_string(&doc["axoha"]) {
            timed(|| refused_by_name(key, Source::EtcClusterToml, parse::cluster_toml(&toml)));
        }
    }

    /// Nesting anywhere, even under keys we ignore, is refused quickly past the cap.
    #[test]
    fn deep_nesting_is_refused_quickly(depth in 0usize..5000, open in prop::sample::select(vec!["[", "{a: ", "- "])) {
        let text = format!("instance-id: x\nignored: {}1\n", open.repeat(depth));
        let result = timed(|| parse::bounded_text(text.into_bytes()).and_then(|t| parse::nocloud(&t)));
        if depth > parse::MAX_NESTING {
            prop_assert!(result.is_err());
        }
    }

    /// Value types: no panic on any text, and what parses prints back as itself.
    #[test]
    fn value_types_round_trip(text in ".{0,80}|[0-9a-f.:/,]{0,40}") {
        macro_rules! round_trip {
            ($($t:ty),*) => {$(
                if let Ok(v) = text.parse::<$t>() {
                    prop_assert_eq!(v.to_string().parse::<$t>().ok().map(|w| w.to_string()), Some(v.to_string()));
                }
            )*};
        }
        round_trip!(IpNet, Peers, InterfaceName, Hostname, Vrid, Priority, AdvertInt,
            HealthCommand, Gateway, DnsServers, NtpServers, Ports);
    }
}
