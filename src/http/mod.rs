//! The Pingora side of a request: reading a `Session` into a
//! [`RequestView`](crate::RequestView) ([`request`]) and writing every reply
//! the product sends ([`response`]).

pub mod request;
pub mod response;
