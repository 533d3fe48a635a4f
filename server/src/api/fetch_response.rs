//! Hand-written Fetch response framing (placeholder until written).
