//! What the tests and benchmarks of every crate of the workspace share, as a crate of its own
//! (a dev-dependency of each), so no test includes another crate's files:
//!
//! - [`aws`]: one moto server per test process on 127.0.0.1, and SDK clients pointed at it;
//! - [`fleet`]: Auto Scaling groups, instances and CloudWatch alarms on it;
//! - [`streams`]: the events table's stream as Lambda delivers it;
//! - [`cognito`]: a Cognito user pool on it, made over the Cognito API;
//! - [`http`]: plain HTTP requests from synchronous test code;
//! - [`common`]: a realistic experiment lifecycle as commands, and stores to run it in;
//! - [`runtime_api`]: a stand-in for the Lambda Runtime API, to measure a Lambda's init;
//! - [`template`]: the SAM template as CloudFormation reads it, and cfn-lint.

pub mod aws;
pub mod cognito;
pub mod common;
pub mod fleet;
pub mod http;
pub mod runtime_api;
pub mod streams;
pub mod template;
