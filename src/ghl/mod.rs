//! placeholder module; filled by its owner.
