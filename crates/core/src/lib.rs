//! Pure domain logic of metrics-server-rs (work in progress: formatting, rate
//! maths, the kubelet exposition decoder and storage).

pub mod duration;
pub mod exposition;
pub mod quantity;
pub mod rate;
pub mod store;
pub mod timefmt;
