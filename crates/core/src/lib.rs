//! Pure domain logic of metrics-server-rs (work in progress: formatting and
//! rate maths first).

pub mod duration;
pub mod quantity;
pub mod rate;
pub mod timefmt;
