//! Integration tests: one binary (cheap to link) with a module per area.

mod caches;
mod certs;
mod kube_mock;
mod outer_filters;
mod reload;
mod request_limits;
mod serving_certs;
mod stack;
mod support;
mod tls_server;
