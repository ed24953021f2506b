//! The HTTP edge shared by the functions.
//!
//! - [`error`]: the error type that maps each failure to a status code and a JSON body.
//! - [`body`]: request bodies within a limit.
//! - [`token`]: the API token check.
//! - [`auth`]: who is calling (the admin, a running build's job, anyone) and what they may do.
//! - [`json`]: the JSON shapes of a build and of a lifecycle event.
//! - [`urls`]: where builds, logs and artifacts are served.

pub mod auth;
pub mod body;
pub mod error;
pub mod json;
pub mod token;
pub mod urls;

pub use auth::Caller;
pub use body::{MAX_BODY, read_body, read_body_up_to};
pub use error::{ApiError, build_id, no_build};
pub use json::{BuildJson, DeliveryJson, EventJson};
pub use token::{bearer, check_token, constant_time_eq};
pub use urls::{artifact_url, build_url, encode_path};
