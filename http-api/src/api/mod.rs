//! The API's contract: types, errors, the OpenAPI document.

pub mod error;
pub mod openapi;
pub mod types;
