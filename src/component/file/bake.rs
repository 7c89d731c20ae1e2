//! The component file's keys about how the bake runs on Packer: the template's format.

use serde::Deserialize;
use std::path::Path;

/// The format of the template gears renders (`template_format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFormat {
    /// HCL2 (`.pkr.hcl`): Packer's format since 1.7; Packer 1.6.6 reads it too.
    Hcl2,
    /// JSON: Packer's legacy format.
    Json,
}

impl TemplateFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateFormat::Hcl2 => "hcl2",
            TemplateFormat::Json => "json",
        }
    }

    /// The rendered template's file name: Packer tells the formats apart by it.
    pub fn file_name(self) -> &'static str {
        match self {
            TemplateFormat::Hcl2 => "template.pkr.hcl",
            TemplateFormat::Json => "template.json",
        }
    }

    /// The format a template's file name says: `*.pkr.hcl[.tera]` or `*.json[.tera]`.
    pub fn of_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let name = name.strip_suffix(".tera").unwrap_or(name);
        if name.ends_with(".pkr.hcl") {
            Some(TemplateFormat::Hcl2)
        } else if name.ends_with(".json") {
            Some(TemplateFormat::Json)
        } else {
            None
        }
    }
}

/// The format a component asks for: `template_format:`, else its own template's by name
/// (`None`: the Packer in use decides). A name that says one format and a `template_format`
/// that says the other is an error, and so is an own template whose name says none without
/// `template_format`.
pub fn template_format(
    asked: Option<TemplateFormat>,
    own: Option<&Path>,
) -> Result<Option<TemplateFormat>, (&'static str, String)> {
    let Some(own) = own else { return Ok(asked) };
    match (asked, TemplateFormat::of_name(own)) {
        (Some(a), Some(n)) if a != n => Err((
            "template_format",
            format!(
                "`template_format: {}` but the template `{}` is named as {}",
                a.as_str(),
                own.display(),
                n.as_str()
            ),
        )),
        (None, None) => Err((
            "template",
            format!(
                "cannot tell the format of template `{}`: name it `*.pkr.hcl.tera` or `*.json.tera`, or set `template_format`",
                own.display()
            ),
        )),
        (a, n) => Ok(a.or(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_templates_format_comes_from_its_name_or_the_key() {
        use TemplateFormat::*;
        let p = Path::new;
        assert_eq!(template_format(None, None), Ok(None));
        assert_eq!(template_format(Some(Hcl2), None), Ok(Some(Hcl2)));
        assert_eq!(
            template_format(None, Some(p("x/own.pkr.hcl.tera"))),
            Ok(Some(Hcl2))
        );
        assert_eq!(
            template_format(None, Some(p("own.json.tera"))),
            Ok(Some(Json))
        );
        assert_eq!(template_format(None, Some(p("own.json"))), Ok(Some(Json)));
        assert_eq!(
            template_format(Some(Json), Some(p("own.tpl"))),
            Ok(Some(Json))
        );
        assert_eq!(
            template_format(Some(Json), Some(p("own.pkr.hcl.tera")))
                .unwrap_err()
                .0,
            "template_format"
        );
        assert_eq!(
            template_format(None, Some(p("own.tpl"))).unwrap_err().0,
            "template"
        );
    }
}
