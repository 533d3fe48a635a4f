//! One module per Kafka API.

pub mod fetch_response;
