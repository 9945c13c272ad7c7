//! The admin API: the HTTP server itself (`http`) and the API as an operator
//! uses it against real Envoys (`operations`).

mod http;
mod operations;
