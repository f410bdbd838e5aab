//! Integration tests: one binary (cheap to link) with a module per area.

mod caches;
mod certs;
mod kube_mock;
mod outer_filters;
mod reload;
mod request_limits;
mod stack;
mod serving_certs;
mod support;
mod tls_server;
