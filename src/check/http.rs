//! HTTP filters, routes, access logs and format strings: what Envoy refuses
//! when it builds a filter chain or a route table.

use super::{Finding, Place, Rule};
use crate::diag::Diagnostics;
use crate::resource::Resource;
use prost_reflect::DynamicMessage;

/// The rules this module reports.
pub static RULES: &[&Rule] = &[];

/// Checks one message at `place`.
pub fn message(_m: &DynamicMessage, _place: &Place<'_>, _out: &mut Vec<Finding>) {}

/// Checks across resources.
pub fn set(_resources: &[Resource], _diags: &mut Diagnostics) {}
