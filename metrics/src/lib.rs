//! axoha-metrics: the node's Prometheus endpoint and login banner (see ARCHITECTURE.md and
//! docs/monitoring.md). What `axoha-firstboot status` and `health` and `axoha-update status`
//! say, as metrics a monitoring system scrapes. A crate of its own, above both: it links the
//! pair's state (axoha-firstboot's library) and the image's (axoha-update's), and neither of
//! them links it, so the binary the initrd runs (axoha-update) carries none of first boot.
//!
//! One source of truth: [`facts::gather`] calls the same functions as the two `status`
//! commands and `health`; [`expose::encode`] (pure) turns the [`facts::Facts`] into the text
//! format; [`heard`] keeps the heartbeat paths listened to in the background (a scrape never
//! waits for adverts); [`serve`] is the HTTP edge; [`banner`] the same facts for the console.
//! `cli` holds the clap types; `main.rs` turns them into the calls.

pub mod banner;
pub mod cli;
pub mod expose;
pub mod facts;
pub mod heard;
pub mod serve;
