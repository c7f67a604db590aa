//! `Slot`: one of the two /usr partition pairs (the boot contract's).

pub use axoha_boot_contract::layout::Slot;
