//! The checks of `base_ami`: one way to name it, each in its form.

use super::{BaseAmi, Problem};

/// `base_ami` has one of an AMI id (that looks like one), a Parameter Store name, or a name
/// pattern.
pub(super) fn check_base_ami(ami: &BaseAmi) -> Result<(), Problem> {
    let given = [ami.id.is_some(), ami.name.is_some(), ami.ssm.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err((
                "base_ami",
                "`base_ami` needs an `id`, an `ssm` parameter, or a `name` pattern (with `owners` and `tags`) to look up".into(),
            ))
        }
        1 => {}
        _ => {
            return Err((
                "base_ami",
                "`base_ami` names more than one of `id`, `ssm` and `name`: give one".into(),
            ))
        }
    }
    if let Some(id) = &ami.id {
        if !crate::aws::is_ami_id(id) {
            return Err((
                "id",
                format!("`{id}` is not an AMI id like ami-0123456789abcdef0"),
            ));
        }
    }
    if let Some(name) = &ami.ssm {
        // Parameter Store's names: letters, digits, `_.-/`, at most 2048; a selector
        // (`:version` or `:label`) may follow.
        let re = regex::Regex::new(r"^[A-Za-z0-9_./-]{1,2048}(:[A-Za-z0-9_.-]{1,100})?$")
            .expect("valid regex");
        if !re.is_match(name) {
            return Err((
                "ssm",
                format!("`{name}` is not a Parameter Store name like /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"),
            ));
        }
    }
    Ok(())
}
