//! `/etc/axoha/node.toml`: the resolved configuration with the source of each value, for
//! audit. Secrets are redacted.

use std::collections::BTreeMap;

use crate::metadata::{Key, Source};

pub fn render(explained: &BTreeMap<Key, (String, Source)>, derived: &[(&str, String)]) -> String {
    let mut out = String::from(
        "# Written by axoha-firstboot: this node's resolved metadata and where each value came from.\n\n[values]\n",
    );
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    for (key, (value, _)) in explained {
        out.push_str(&format!("{} = {}\n", quote(key.name()), quote(value)));
    }
    out.push_str("\n[sources]\n");
    for (key, (_, source)) in explained {
        out.push_str(&format!(
            "{} = {}\n",
            quote(key.name()),
            quote(&source.to_string())
        ));
    }
    out.push_str("\n[derived]\n");
    for (name, value) in derived {
        out.push_str(&format!("{name} = {}\n", quote(value)));
    }
    out
}
