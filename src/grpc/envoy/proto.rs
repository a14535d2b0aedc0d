//! Envoy's generated messages and the `RateLimitService` trait, from the
//! protos vendored under `proto/vendor/`. The modules nest as the packages
//! do: the generated code names its imports by relative paths. (A package
//! of options only, such as `envoy.annotations`, generates nothing.)
#![allow(clippy::all, missing_docs, dead_code)]

pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod extensions {
        pub mod common {
            pub mod ratelimit {
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    pub mod service {
        pub mod ratelimit {
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }
    pub mod r#type {
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
}

pub mod xds {
    pub mod annotations {
        pub mod v3 {
            tonic::include_proto!("xds.annotations.v3");
        }
    }
    pub mod core {
        pub mod v3 {
            tonic::include_proto!("xds.core.v3");
        }
    }
}

pub mod udpa {
    pub mod annotations {
        tonic::include_proto!("udpa.annotations");
    }
}

pub mod validate {
    tonic::include_proto!("validate");
}
