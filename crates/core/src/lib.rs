//! Pure domain logic of metrics-server-rs (work in progress: formatting, rate
//! maths and the kubelet exposition decoder).

pub mod duration;
pub mod exposition;
pub mod quantity;
pub mod rate;
pub mod timefmt;
