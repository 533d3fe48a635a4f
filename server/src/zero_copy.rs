//! Zero-copy file-to-socket sends (placeholder until written).
