//! The fake's Auto Scaling model behind [`super::FakeFleet`]: groups and their members, launch
//! templates and configurations, target health; and the calls a test sets it up with.

use super::FakeCloud;
use crate::aws::{Group, LaunchHook, Member, TemplateRef};
use std::collections::BTreeMap;

/// The fake's Auto Scaling: groups, launch template versions (template id → version → image),
/// target health by image, and a log of the healthy in-service count after every change.
#[derive(Default)]
pub(super) struct FleetState {
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) templates: BTreeMap<String, Vec<String>>,
    /// Launch configuration name → image.
    pub(super) configurations: BTreeMap<String, String>,
    pub(super) images: BTreeMap<String, String>,
    /// Group → the keys of its tags that propagate to the instances it launches.
    pub(super) propagated: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Instance → its tags (the group's propagated tags when it was launched).
    pub(super) member_tags: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) next: u32,
    /// Instances of these images fail their target-group health check.
    pub(super) unhealthy_images: Vec<String>,
    /// These instances fail their target-group health checks.
    pub(super) unhealthy_members: Vec<String>,
    /// Every instance launched after the first N fails its target-group health checks.
    pub(super) unhealthy_after: Option<u32>,
    /// Instance refreshes: group → (id, status).
    pub(super) refreshes: BTreeMap<String, (String, String)>,
    /// Healthy in-service members after each change, per group.
    pub(super) floor_log: BTreeMap<String, Vec<usize>>,
    /// A template's default version, when not 1.
    pub(super) default_versions: BTreeMap<String, usize>,
    /// Template versions gears made (described as gears' versions), (template id, number).
    pub(super) gears_versions: std::collections::BTreeSet<(String, usize)>,
    /// Template versions deleted (template id, number): EC2 never gives a number again.
    pub(super) deleted_versions: std::collections::BTreeSet<(String, usize)>,
    /// CreateLaunchTemplateVersion client tokens (region/token) → the version they made and
    /// what was asked.
    pub(super) client_tokens: BTreeMap<String, (String, String)>,
    /// Launch lifecycle hooks, per group.
    pub(super) launch_hooks: BTreeMap<String, Vec<LaunchHook>>,
    /// Instances of these images stay in `Pending:Wait` (a launch hook nobody completes).
    pub(super) held_images: Vec<String>,
    /// Instances of these images are `OutOfService` in the Classic load balancers (while Auto
    /// Scaling, in its grace period, says Healthy).
    pub(super) out_of_service_images: Vec<String>,
    /// CloudWatch alarms: name → (state, reason).
    pub(super) alarms: BTreeMap<String, (String, String)>,
    /// Scaling policy names, per group.
    pub(super) policies: BTreeMap<String, Vec<String>>,
    /// Scheduled action names, per group.
    pub(super) scheduled: BTreeMap<String, Vec<String>>,
    /// Every tag-writing call (CreateOrUpdateTags, DeleteTags), in order.
    pub(super) tag_log: Vec<TagCall>,
}

/// One tag-writing call: its operation, and the groups and keys it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCall {
    pub operation: &'static str,
    pub groups: std::collections::BTreeSet<String>,
    pub keys: std::collections::BTreeSet<String>,
}

impl FleetState {
    /// Logs a tag-writing call.
    pub(super) fn log_tags<'a>(
        &mut self,
        operation: &'static str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let (groups, keys) = tags
            .into_iter()
            .map(|(g, k)| (g.to_owned(), k.to_owned()))
            .unzip();
        self.tag_log.push(TagCall {
            operation,
            groups,
            keys,
        });
    }

    /// The version number `t.version` means now (`$Latest`, `$Default` or a number), if the
    /// template has it.
    pub(super) fn version(&self, t: &TemplateRef) -> Option<usize> {
        let n = self.templates.get(&t.id)?.len();
        let gone = |v: usize| self.deleted_versions.contains(&(t.id.clone(), v));
        let v = match t.version.as_str() {
            "$Latest" => (1..=n).rev().find(|v| !gone(*v))?,
            "$Default" => self.default_versions.get(&t.id).copied().unwrap_or(1),
            v => v.parse().ok()?,
        };
        ((1..=n).contains(&v) && !gone(v)).then_some(v)
    }

    /// The image of the template version `t` names, if it exists.
    pub(super) fn version_image(&self, t: &TemplateRef) -> Option<String> {
        let v = self.version(t)?;
        self.templates.get(&t.id)?.get(v - 1).cloned()
    }

    fn launch(&mut self, group: &str) -> Option<()> {
        let g = self.groups.get(group)?;
        let image = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => self.version_image(t)?,
            (None, Some(c)) => self.configurations.get(c)?.clone(),
            (None, None) => return None,
        };
        self.next += 1;
        let id = format!("i-f{:016x}", self.next);
        let held = self.held_images.contains(&image);
        self.images.insert(id.clone(), image);
        let propagated = self.propagated.get(group).cloned().unwrap_or_default();
        let tags = (g.tags.iter())
            .filter(|(k, _)| propagated.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.member_tags.insert(id.clone(), tags);
        self.groups.get_mut(group)?.members.push(Member {
            id,
            lifecycle: if held { "Pending:Wait" } else { "InService" }.into(),
            health: "Healthy".into(),
        });
        Some(())
    }

    /// Launches or removes members until the group has its desired count (newest removed
    /// first), then records the healthy count.
    pub(super) fn settle(&mut self, group: &str) {
        loop {
            let Some(g) = self.groups.get(group) else {
                return;
            };
            let n = g.members.iter().filter(|m| m.counts()).count() as i32;
            let want = g.desired;
            // As AWS enforces them: a suspended Launch (or Terminate) process launches (or
            // removes) nothing, whatever desired says.
            let suspended = |p: &str| g.suspended.iter().any(|s| s == p);
            if (n < want && suspended("Launch")) || (n > want && suspended("Terminate")) {
                break;
            }
            if n < want {
                if self.launch(group).is_none() {
                    break;
                }
            } else if n > want {
                if let Some(g) = self.groups.get_mut(group) {
                    // The newest member that counts goes.
                    if let Some(i) = g.members.iter().rposition(|m| m.counts()) {
                        g.members.remove(i);
                    }
                }
            } else {
                break;
            }
        }
        self.record(group);
    }

    fn healthy(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.members
                .iter()
                .filter(|m| {
                    m.in_service()
                        && !self.late(&m.id)
                        && !self.unhealthy_members.contains(&m.id)
                        && !self
                            .images
                            .get(&m.id)
                            .is_some_and(|i| self.unhealthy_images.contains(i))
                        && (g.load_balancers.is_empty() || !self.out_of_service(&m.id))
                })
                .count()
        })
    }

    /// Out of service in a Classic load balancer.
    pub(super) fn out_of_service(&self, id: &str) -> bool {
        self.images.get(id).is_some_and(|i| {
            self.out_of_service_images.contains(i) || self.unhealthy_images.contains(i)
        }) || self.unhealthy_members.iter().any(|m| m == id)
    }

    /// Launched after the first `unhealthy_after` instances.
    pub(super) fn late(&self, id: &str) -> bool {
        let n = id
            .strip_prefix("i-f")
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        matches!((self.unhealthy_after, n), (Some(after), Some(n)) if n > after)
    }

    pub(super) fn record(&mut self, group: &str) {
        let h = self.healthy(group);
        self.floor_log.entry(group.to_owned()).or_default().push(h);
    }
}

impl FakeCloud {
    pub(super) fn fleet_state(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a group launching from template `template` (its versions' images), with `desired`
    /// members running the last version's image.
    pub fn add_group(&self, group: Group, template_images: &[&str]) {
        let mut f = self.fleet_state();
        if let Some(t) = &group.template {
            f.templates.insert(
                t.id.clone(),
                template_images.iter().map(|s| s.to_string()).collect(),
            );
        }
        let name = group.name.clone();
        f.groups.insert(name.clone(), group);
        f.settle(&name);
    }

    /// Gives group `group` scaling policies and scheduled actions (by name).
    pub fn add_scaling(&self, group: &str, policies: &[&str], scheduled: &[&str]) {
        let mut f = self.fleet_state();
        f.policies.insert(
            group.into(),
            policies.iter().map(|s| s.to_string()).collect(),
        );
        f.scheduled.insert(
            group.into(),
            scheduled.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Group `group`'s scaling policies and scheduled actions (by name).
    pub fn scaling(&self, group: &str) -> (Vec<String>, Vec<String>) {
        let f = self.fleet_state();
        (
            f.policies.get(group).cloned().unwrap_or_default(),
            f.scheduled.get(group).cloned().unwrap_or_default(),
        )
    }

    /// Every group's name.
    pub fn group_names(&self) -> Vec<String> {
        self.fleet_state().groups.keys().cloned().collect()
    }

    /// Adds a launch template `id` whose versions (1 first) launch `images`.
    pub fn add_template(&self, id: &str, images: &[&str]) {
        self.fleet_state().templates.insert(
            id.to_owned(),
            images.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Adds a launch configuration.
    pub fn add_configuration(&self, name: &str, image: &str) {
        self.fleet_state()
            .configurations
            .insert(name.to_owned(), image.to_owned());
    }

    /// The launch configurations and their images.
    pub fn configurations(&self) -> BTreeMap<String, String> {
        self.fleet_state().configurations.clone()
    }

    /// Every tag-writing call (CreateOrUpdateTags, DeleteTags) so far, in order.
    pub fn tag_calls(&self) -> Vec<TagCall> {
        self.fleet_state().tag_log.clone()
    }

    /// Sets a tag on a group directly (as a human or another tool would).
    pub fn fake_fleet_tag(&self, group: &str, key: &str, value: &str) {
        if let Some(g) = self.fleet_state().groups.get_mut(group) {
            g.tags.insert(key.to_owned(), value.to_owned());
        }
    }

    /// Makes a group's launch template its mixed-instances policy's; `override_templates` are
    /// the instance types whose overrides name a template of their own.
    pub fn set_mixed(&self, group: &str, override_templates: &[&str]) {
        if let Some(g) = self.fleet_state().groups.get_mut(group) {
            g.mixed = true;
            g.override_templates = override_templates.iter().map(|s| s.to_string()).collect();
        }
    }

    /// Sets a launch template's default version (1 otherwise).
    pub fn set_default_version(&self, template: &str, n: usize) {
        self.fleet_state()
            .default_versions
            .insert(template.to_owned(), n);
    }

    /// A version of `template` with `image` made by someone else than gears (by hand, another
    /// tool): its number.
    pub fn add_version_by_hand(&self, template: &str, image: &str) -> usize {
        let mut f = self.fleet_state();
        let v = f.templates.entry(template.to_owned()).or_default();
        v.push(image.to_owned());
        v.len()
    }

    /// The image group `group` launches now (its template version's, or configuration's).
    pub fn launches(&self, group: &str) -> Option<String> {
        let f = self.fleet_state();
        let g = f.groups.get(group)?;
        match (&g.template, &g.launch_configuration) {
            (Some(t), _) => f.version_image(t),
            (None, Some(c)) => f.configurations.get(c).cloned(),
            _ => None,
        }
    }

    /// The images of a template's versions (1 first; deleted ones too).
    pub fn template_versions(&self, template: &str) -> Vec<String> {
        self.fleet_state()
            .templates
            .get(template)
            .cloned()
            .unwrap_or_default()
    }

    /// A launch lifecycle hook on `group` that holds instances of `images` in `Pending:Wait`.
    pub fn add_launch_hook(&self, group: &str, hook: LaunchHook, images: &[&str]) {
        let mut f = self.fleet_state();
        f.launch_hooks
            .entry(group.to_owned())
            .or_default()
            .push(hook);
        f.held_images.extend(images.iter().map(|s| s.to_string()));
    }

    /// Puts a member in a lifecycle state (`Standby`, `Terminating:Wait`, ...).
    pub fn set_lifecycle(&self, id: &str, state: &str) {
        let mut f = self.fleet_state();
        for g in f.groups.values_mut() {
            for m in g.members.iter_mut().filter(|m| m.id == id) {
                m.lifecycle = state.to_owned();
            }
        }
    }

    /// Lets the group launch or remove members until its desired count is met.
    pub fn settle(&self, group: &str) {
        self.fleet_state().settle(group);
    }

    /// Every instance launched after the first `n` fails its target-group health checks.
    pub fn set_unhealthy_after(&self, n: u32) {
        self.fleet_state().unhealthy_after = Some(n);
    }

    /// This instance fails its target-group health checks from now on.
    pub fn set_unhealthy_member(&self, id: &str) {
        self.fleet_state().unhealthy_members.push(id.to_owned());
    }

    /// Instances of these images fail their target-group health checks from now on.
    pub fn set_unhealthy_images(&self, images: &[&str]) {
        self.fleet_state().unhealthy_images = images.iter().map(|s| s.to_string()).collect();
    }

    /// Instances of these images are `OutOfService` in the groups' Classic load balancers from
    /// now on (Auto Scaling and target groups still say healthy).
    pub fn set_out_of_service_images(&self, images: &[&str]) {
        self.fleet_state().out_of_service_images = images.iter().map(|s| s.to_string()).collect();
    }

    /// A CloudWatch alarm in this state (`OK`, `ALARM`, `INSUFFICIENT_DATA`) from now on.
    pub fn set_alarm(&self, name: &str, state: &str, reason: &str) {
        self.fleet_state()
            .alarms
            .insert(name.to_owned(), (state.to_owned(), reason.to_owned()));
    }

    /// Changes a group as a test needs it (its load balancers, units, warm pool...).
    pub fn edit_group(&self, name: &str, edit: impl FnOnce(&mut Group)) {
        if let Some(g) = self.fleet_state().groups.get_mut(name) {
            edit(g);
        }
    }

    /// The group as it is now.
    pub fn group(&self, name: &str) -> Option<Group> {
        self.fleet_state().groups.get(name).cloned()
    }

    /// The image of each member of the group.
    pub fn member_images(&self, name: &str) -> Vec<String> {
        let f = self.fleet_state();
        f.groups.get(name).map_or(Vec::new(), |g| {
            g.members
                .iter()
                .filter_map(|m| f.images.get(&m.id).cloned())
                .collect()
        })
    }

    /// The lowest healthy in-service count the group had after any change.
    pub fn healthy_floor(&self, name: &str) -> Option<usize> {
        self.fleet_state()
            .floor_log
            .get(name)
            .and_then(|v| v.iter().min().copied())
    }
}
