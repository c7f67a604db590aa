//! OpenStack instance metadata: `openstack/latest/meta_data.json`
//! (<https://docs.openstack.org/nova/latest/user/metadata.html>), one JSON document that
//! Nova puts on the config drive (`config_drive.rs`) and serves from the metadata service
//! (`metadata_service.rs`). The shape of afterburn's `providers/openstack`.
//!
//! What we read of it:
//! - `meta`: the server's properties (`openstack server create --property axoha.role=primary`),
//!   a map of strings. Our keys are spelled as on the kernel command line, `axoha.KEY`: Nova
//!   allows letters, digits, `-`, `_`, `:`, `.` and space in a property name (1-255
//!   characters), so the dot stays and the table keys are `axoha.health.command`,
//!   `axoha.firewall.ports`. A value is text (a list is comma-separated, as on the command
//!   line), typed by the same parsers as every other source; a hand-made file may give a key
//!   its own JSON kind instead ([`Shape`] decides, as for instance data). Properties without
//!   the `axoha.` prefix belong to others and are passed over; an unknown `axoha.` key, or
//!   one of ours misspelled (`axoha_role`, `AXOHA.role`), is an error naming it, as everywhere.
//! - `hostname` (Nova's host name for the server), else `name`, stands in for
//!   `axoha.hostname` when `meta` has none, as cloud-init would set it anyway. It must be a
//!   valid host name (RFC 1123), else the error names the field.
//!
//! Everything else (`uuid`, `public_keys`, `devices`, `random_seed`, ...) is OpenStack's and
//! ignored: logins come from the image's `[[users]]`, so `public_keys` has no use here.

pub mod config_drive;
pub mod http;
mod lease;
pub mod metadata_service;

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::Value;

use super::keys_file::Scalar;
use super::Key;
use crate::log::quote;

/// The document's path under the config drive's top and under the metadata service.
pub const META_DATA_JSON: &str = "openstack/latest/meta_data.json";

/// The values `meta_data.json` sets (see the module comment).
pub fn parse(text: &str) -> Result<BTreeMap<Key, String>> {
    let doc: Value = serde_json::from_str(text)?;
    let Value::Object(doc) = doc else {
        bail!("expected a JSON object, not {}", kind(&doc));
    };
    let mut values = BTreeMap::new();
    match doc.get("meta") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            for (name, value) in meta {
                let Some(rest) = name.strip_prefix("axoha.") else {
                    // `axoha_role`, `axoha:role`, `AXOHA.role`: meant for us, misspelled.
                    if name.len() > 5 && name[..5].eq_ignore_ascii_case("axoha") {
                        bail!(
                            "meta: unknown key {}: axoha's properties are spelled axoha.KEY, \
                             as on the kernel command line",
                            quote(name)
                        );
                    }
                    continue;
                };
                let Some(key) = Key::from_name(rest) else {
                    bail!(
                        "meta: unknown key {} (known: {})",
                        quote(name),
                        Key::ALL
                            .iter()
                            .map(|k| format!("axoha.{k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                };
                if value.is_null() {
                    continue;
                }
                let text = key
                    .shape()
                    .text(key, &scalar(value))
                    .map_err(|e| anyhow::anyhow!("meta: axoha.{e}"))?;
                values.insert(key, text);
            }
        }
        Some(other) => bail!("meta: expected a map of strings, not {}", kind(other)),
    }
    if !values.contains_key(&Key::Hostname) {
        for field in ["hostname", "name"] {
            match doc.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::String(name)) => {
                    if let Err(e) = name.parse::<crate::types::Hostname>() {
                        bail!("{field} = {}: {e}", quote(name));
                    }
                    values.insert(Key::Hostname, name.clone());
                    break;
                }
                Some(other) => bail!("{field}: expected a string, not {}", kind(other)),
            }
        }
    }
    Ok(values)
}

/// A JSON value as [`Scalar`], so [`Shape`] judges its kind as in every other file.
fn scalar(value: &Value) -> Scalar {
    match value {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Scalar::Int(i.into()),
            (None, Some(u)) => Scalar::Int(u.into()),
            _ => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => Scalar::List(items.iter().map(scalar).collect()),
        Value::Object(_) => Scalar::Map,
        Value::Null => Scalar::Null,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like Nova's (2023.1) meta_data.json, with our properties.
    const NOVA: &str = r#"{"uuid": "0a1b2c3d-0000-4000-8000-000000000001",
        "meta": {"axoha.role": "primary", "axoha.ha_ip": "192.0.2.10/24",
                 "axoha.peers": "192.0.2.11,192.0.2.12", "axoha.vrid": "51",
                 "axoha.health.fall": "3", "axoha.firewall.ports": "4317/tcp,514/udp",
                 "heat_stack": "not ours"},
        "public_keys": {"ops": "ssh-ed25519 AAAA ops"},
        "keys": [{"name": "ops", "type": "ssh", "data": "ssh-ed25519 AAAA ops"}],
        "hostname": "router-a.novalocal", "name": "Router A", "launch_index": 0,
        "availability_zone": "nova", "random_seed": "cmFuZG9t", "project_id": "p",
        "devices": [], "dedicated_cpus": []}"#;

    #[test]
    fn reads_axoha_properties_and_the_host_name() {
        let v = parse(NOVA).unwrap();
        assert_eq!(v[&Key::Role], "primary");
        assert_eq!(v[&Key::Peers], "192.0.2.11,192.0.2.12");
        assert_eq!(v[&Key::Vrid], "51");
        assert_eq!(v[&Key::HealthFall], "3");
        assert_eq!(v[&Key::FirewallPorts], "4317/tcp,514/udp");
        assert_eq!(v[&Key::Hostname], "router-a.novalocal");
        assert_eq!(v.len(), 7);
    }

    #[test]
    fn meta_hostname_wins_and_name_is_the_fallback() {
        let v = parse(r#"{"meta": {"axoha.hostname": "r1"}, "hostname": "x", "name": "y"}"#);
        assert_eq!(v.unwrap()[&Key::Hostname], "r1");
        let v = parse(r#"{"name": "router-b"}"#).unwrap();
        assert_eq!(v[&Key::Hostname], "router-b");
        assert!(parse("{}").unwrap().is_empty());
    }

    #[test]
    fn hostile_documents_are_refused_by_name() {
        for (doc, named) in [
            (r#"{"meta": {"axoha.vird": "5"}}"#, "axoha.vird"),
            (
                r#"{"meta": {"axoha.vrid": 51.0}}"#,
                "axoha.vrid: expected an integer",
            ),
            (r#"{"meta": {"axoha.role": 1}}"#, "axoha.role"),
            (r#"{"meta": {"axoha.peers": [1]}}"#, "axoha.peers"),
            (r#"{"meta": {"axoha.vrid": {"a": 1}}}"#, "axoha.vrid"),
            (
                r#"{"meta": ["axoha.role=primary"]}"#,
                "meta: expected a map",
            ),
            (r#"{"meta": "axoha.role=primary"}"#, "meta: expected a map"),
            (r#"{"hostname": 5}"#, "hostname: expected a string"),
            (r#"{"hostname": "Router A"}"#, "hostname = \"Router A\""),
            (r#"{"name": "router_b"}"#, "name = \"router_b\""),
            (r#"["meta"]"#, "expected a JSON object"),
        ] {
            let err = format!("{:#}", parse(doc).unwrap_err());
            assert!(err.contains(named), "{doc}: {err}");
        }
        assert!(parse(r#"{"meta": {"axoha.role": "primary""#).is_err());
    }

    #[test]
    fn null_is_not_set_and_other_properties_are_not_ours() {
        let v = parse(r#"{"meta": {"axoha.role": null, "role": "x", "axoha": "y"}}"#).unwrap();
        assert!(v.is_empty(), "{v:?}");
        let err = parse(r#"{"meta": {"axoha_role": "primary"}}"#).unwrap_err();
        assert!(err.to_string().contains("axoha_role"), "{err}");
    }
}
