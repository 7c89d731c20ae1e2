//! What a group launches from: launch template versions and launch configurations.

use crate::aws::CloudError;
use std::future::Future;

/// The description of every launch template version gears makes.
pub const GEARS_VERSION_DESCRIPTION: &str = "gears deploy";

/// A launch template version a group launches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub id: String,
    /// A version number (`$Latest`/`$Default` are resolved by the deploy before it changes them).
    pub version: String,
}

/// Launch templates and launch configurations of one region, and the one a group launches
/// from.
pub trait Launches: Send + Sync {
    /// The image of a launch template version.
    fn template_image(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The version number `t.version` means now (`$Latest`, `$Default`, or a number).
    fn resolve_version(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The version number `t.version` means now and its image, in one call.
    fn version_image(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<(String, String), CloudError>> + Send;

    /// A new version of the template, from `source`, with `image`; returns its number. A
    /// repeated `token` returns the version it created (an idempotent retry).
    fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// Whether gears made template version `t` (its description is
    /// [`GEARS_VERSION_DESCRIPTION`]): only such versions are stepped past or deleted.
    fn made_by_gears(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Deletes launch template version `t` (a number; never the default version: EC2 refuses
    /// it). A version already gone is no error.
    fn delete_template_version(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Points the group at a template version: its own launch template, or with `mixed` its
    /// mixed-instances policy's (the overrides and the instances distribution stay as they are).
    fn set_template(
        &self,
        group: &str,
        t: &TemplateRef,
        mixed: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The image of a launch configuration.
    fn configuration_image(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// A copy of launch configuration `source` named `name`, with `image`.
    fn copy_configuration(
        &self,
        source: &str,
        name: &str,
        image: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes a launch configuration (one no group uses: AWS refuses `ResourceInUse` else).
    fn delete_configuration(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Points the group at a launch configuration.
    fn set_configuration(
        &self,
        group: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}
