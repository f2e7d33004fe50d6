//! The fleet-file parser and validator: any text gets a fleet or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_coordinator::config::Fleet;

fuzz_target!(|text: &str| {
    if let Ok(fleet) = Fleet::parse(text, "fuzz.toml") {
        // A fleet that validated must answer its own questions without panicking.
        for project in fleet.projects.keys() {
            for env in fleet.environments.keys() {
                let _ = fleet.instance_count(project, env);
                let _ = fleet.variables(project, env);
                let _ = slipway_coordinator::infra::load_balancer_spec(&fleet, project, env);
            }
        }
    }
});
