//! Test support that belongs to no one stage: the IAM policy test, which runs every stage on the
//! fake AWS and checks `docs/iam-policy.json` against the calls they made, and the recorder of a
//! serde type's fields that proves the key tables of the reference complete.

pub(crate) mod fields;
mod iam_policy;
