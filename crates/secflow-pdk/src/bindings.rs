//! Raw bindings generated from `wit/secflow-plugin.wit`, one module per world. Plugin authors
//! do not use these directly; the traits and export macros in the crate root wrap them.
//! The first world owns the shared imports (`types`, `host`, `kv`); the others reuse them
//! through `with` so every kind shares one `Finding` type.

pub mod action {
    wit_bindgen::generate!({
        path: "wit",
        world: "action-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_action_world",
        default_bindings_module: "$crate::bindings::action",
    });
}

macro_rules! world_module {
    ($module:ident, $world:literal, $macro:literal, $path:literal) => {
        pub mod $module {
            wit_bindgen::generate!({
                path: "wit",
                world: $world,
                pub_export_macro: true,
                export_macro_name: $macro,
                default_bindings_module: $path,
                with: {
                    "secflow:plugin/types@0.1.0": crate::bindings::action::secflow::plugin::types,
                    "secflow:plugin/host@0.1.0": crate::bindings::action::secflow::plugin::host,
                    "secflow:plugin/kv@0.1.0": crate::bindings::action::secflow::plugin::kv,
                },
            });
        }
    };
}

world_module!(
    detector,
    "detector-plugin",
    "__export_detector_world",
    "$crate::bindings::detector"
);
world_module!(
    enricher,
    "enricher-plugin",
    "__export_enricher_world",
    "$crate::bindings::enricher"
);
world_module!(
    analytics,
    "analytics-plugin",
    "__export_analytics_world",
    "$crate::bindings::analytics"
);
world_module!(
    proxy_filter,
    "proxy-filter-plugin",
    "__export_proxy_filter_world",
    "$crate::bindings::proxy_filter"
);
world_module!(
    log_analyzer,
    "log-analyzer-plugin",
    "__export_log_analyzer_world",
    "$crate::bindings::log_analyzer"
);
world_module!(
    dynamic_tester,
    "dynamic-tester-plugin",
    "__export_dynamic_tester_world",
    "$crate::bindings::dynamic_tester"
);
