//! `Slot`: one of the two /usr partition pairs.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The lower-case letter used in paths (`/efi/axoha/b/`) and titles.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// GPT names of its usr and verity partitions.
    pub fn usr_name(self) -> &'static str {
        match self {
            Slot::A => "usr-a",
            Slot::B => "usr-b",
        }
    }

    pub fn verity_name(self) -> &'static str {
        match self {
            Slot::A => "usr-a-verity",
            Slot::B => "usr-b-verity",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}
