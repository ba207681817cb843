//! mtls-gate: keeps open-banking endpoints' client-certificate (MTLS) requirements correct
//! on Kubernetes ingress controllers.
//!
//! The [`engine`] is pure and shared by the CLI, the admission webhooks and the controller.

pub mod admission;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod dialect;
pub mod engine;
pub mod manifest;
pub mod model;
pub mod paths;
pub mod probe;
pub mod profile;
pub mod render;
pub mod synthetic;
pub mod violation;
pub mod webhook;
