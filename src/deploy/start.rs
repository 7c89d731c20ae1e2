//! The start of a group's deploy: the lock taken, the deploy recorded, the new launch spec made
//! (or an interrupted deploy of the same AMI continued).
use crate::aws::{Fleet, Group, GroupTag, LockTable, TemplateRef};
use crate::deploy::lock::settle;
use crate::deploy::lock::{held_by_another, refused, stopped, Holder, LockValue};
use crate::deploy::roll::{counting, Roll};
use crate::deploy::state::{version_token, OnGroup, State};
use crate::deploy::{LOCK_TAG, STATE_TAG, SUSPEND, TAGS_TAG};
use crate::error::{Error, InputError};
use crate::wait::patiently;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// What a run read of launch templates, once each: `region/template/VERSION` → the number it
/// meant at the run's first reading (groups sharing a template all return to that version on
/// rollback, and share one new version), and `image region/template/N` → that version's image;
/// and a gate per reading, so groups asking at once make one call.
#[derive(Default)]
pub(super) struct TemplateReads {
    known: std::sync::Mutex<BTreeMap<String, String>>,
    gates: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl TemplateReads {
    fn known(&self, key: &str) -> Option<String> {
        let m = self.known.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }

    /// `value` kept for `key`, unless one was kept first: the one kept.
    fn keep(&self, key: String, value: String) -> String {
        let mut m = self.known.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key).or_insert(value).clone()
    }

    fn gate(&self, key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut g = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(key.to_owned()).or_default().clone()
    }
}

/// How many template versions a deploy looks back past the ones that launch its AMI already.
const LOOK_BACK: usize = 10;

/// Who takes a group's lock tag: a deploy, or an `--abort` (which takes over a dead run's lock
/// of any deploy it undoes, and a STOP: a human decided to undo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taking {
    Deploy,
    Abort,
}

/// The launch spec a deploy starts from and goes to: a template version to make, or a launch
/// configuration copy already made.
struct Spec {
    /// The template (empty for a launch configuration).
    lt: String,
    /// Where a rollback returns (`$Default`, a version number, or the configuration).
    from: String,
    /// The number the group's version meant when the deploy started.
    fromn: String,
    /// The new spec, when it exists already (a configuration copy).
    to: Option<String>,
    lc: bool,
}

/// The name of gears' copy of launch configuration `source` for `run`: the source's name (less
/// the suffix of an earlier copy, so names do not grow deploy after deploy), `-gears-` and 8 hex
/// digits of the run, within AWS's 255 characters.
pub(super) fn copy_name(source: &str, run: &str) -> String {
    let suffix: String = run.chars().filter(char::is_ascii_hexdigit).collect();
    let base = gears_copy_base(source).unwrap_or(source);
    let base: String = base.chars().take(255 - 7 - 8).collect();
    format!("{base}-gears-{}", &suffix[suffix.len().saturating_sub(8)..])
}

/// The source's name when `name` is a copy gears made (`<source>-gears-` and 8 hex digits).
pub(super) fn gears_copy_base(name: &str) -> Option<&str> {
    let (base, hex) = name.rsplit_once("-gears-")?;
    (hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) && !base.is_empty())
        .then_some(base)
}

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// Takes the lock (or takes over a stale one of the same AMI) and writes the state, or
    /// reads the state of an interrupted deploy of this AMI.
    pub(super) async fn start(&self, g: &Group, on: &OnGroup) -> Result<State, Error> {
        // Refused before the lock is written: nothing changes.
        if !g.override_templates.is_empty() && on.recorded.is_none() {
            return Err(InputError::whole_file(
                format!("group {}", self.name),
                format!(
                    "the mixed-instances policy gives {} a launch template of its own (an AMI of its own): gears deploys one AMI per group",
                    g.override_templates.join(", ")
                ),
            )
            .with_hint("give the overrides the group's launch template, or deploy each template's AMI separately")
            .into());
        }
        self.take_tag_lock(on).await?;
        match on.recorded.clone() {
            Some(s) if s.ami == self.ami => self.carry_on(g, s).await,
            Some(s) => Err(refused(
                &self.name,
                format!(
                    "an interrupted deploy of {} is recorded on the group",
                    s.ami
                ),
                "`gears deploy --abort` (with that AMI) undoes it first",
            )),
            None => {
                let spec = self.spec(g).await?;
                let state = self.state_of(g, spec)?;
                self.begin(g, state).await
            }
        }
    }

    /// An interrupted deploy of this AMI continued from whatever its run had reached (even a
    /// rollback under way): the new launch spec (made now, if the killed run had not yet), the
    /// instance tags and the processes suspended again.
    async fn carry_on(&self, g: &Group, mut s: State) -> Result<State, Error> {
        let d = self.deadline();
        self.say(&format!(
            "continuing the deploy of {} recorded by run {}",
            s.ami, s.run
        ));
        if s.to.is_empty() && !s.lc {
            s.to = self.create_version(&s).await?;
            self.record(&s).await?;
        }
        // A run killed before it kept the instance tags had not written the new ones either:
        // the group's are still those before the deploy, kept now (a rollback puts them back).
        // An interrupted rollback may have put the old instance tags back.
        let mut tags = Vec::new();
        if !g.tags.contains_key(TAGS_TAG) {
            tags.extend(self.tags_before(g));
        }
        tags.extend(GroupTag::all(&self.name, self.instance_tags, true));
        patiently(self.cancel, d, || self.fleet.put_tag_list(&tags)).await?;
        patiently(self.cancel, d, || {
            self.fleet.set_processes(&self.name, &s.susp, true)
        })
        .await?;
        self.point_at(&s, &s.to).await?;
        Ok(s)
    }

    /// The new launch spec: a template version with the new AMI, or for a group on a legacy
    /// launch configuration, a copy of it with the new AMI.
    async fn spec(&self, g: &Group) -> Result<Spec, Error> {
        match (&g.template, &g.launch_configuration) {
            (Some(t), _) => self.template_spec(g, t).await,
            (None, Some(c)) => {
                let name = copy_name(c, &self.run);
                patiently(self.cancel, self.deadline(), || {
                    self.fleet.copy_configuration(c, &name, &self.ami)
                })
                .await
                .map_err(|e| match e {
                    Error::Cloud(e) if e.code() == Some("UnsupportedOperation") => {
                        InputError::whole_file(
                            format!("group {}", self.name),
                            format!("AWS refuses to create its launch configuration copy ({e}): accounts created since October 2024 cannot create launch configurations"),
                        )
                        .with_hint("move the group to a launch template (the console's \"copy to launch template\"), then deploy again")
                        .into()
                    }
                    e => e,
                })?;
                Ok(Spec {
                    lt: String::new(),
                    from: c.clone(),
                    fromn: String::new(),
                    to: Some(name),
                    lc: true,
                })
            }
            (None, None) => Err(InputError::whole_file(
                format!("group {}", self.name),
                "the group has no launch template, mixed-instances policy or launch configuration: gears cannot deploy it",
            )
            .into()),
        }
    }

    /// A template group's spec. The number `$Latest`/`$Default` means now, read before ours
    /// exists: ours is based on it, and a rollback returns to it. `$Default` stays `$Default`
    /// on rollback (gears never changes a template's default version); `$Latest` does not (ours
    /// is the latest now), so it becomes the number it meant. Groups of this run on the same
    /// template share the first reading (taken before that group made its version, so a later
    /// reading cannot see ours). The new version is made once the deploy is recorded.
    async fn template_spec(&self, g: &Group, t: &TemplateRef) -> Result<Spec, Error> {
        let (source, _) = self.launched_from(g, t).await?;
        Ok(Spec {
            lt: t.id.clone(),
            from: match t.version.as_str() {
                "$Default" => "$Default".to_owned(),
                _ => source.clone(),
            },
            fromn: source,
            to: None,
            lc: false,
        })
    }

    /// The version group `g` launched from on template `t`, and its image: the number `t` meant
    /// at the run's first reading; or, when that launches this deploy's AMI while the group's
    /// instances run another and it is `$Latest` moved by gears' own versions of the AMI (a run
    /// killed after another group's new version), the newest version before those. Refused when
    /// it launches the AMI otherwise: a rollback would have no version to return to.
    pub(super) async fn launched_from(
        &self,
        g: &Group,
        t: &TemplateRef,
    ) -> Result<(String, String), Error> {
        let (source, image) = self.version_of(t).await?;
        if image != self.ami {
            return Ok((source, image));
        }
        // The members that count (Pending, InService): one in Standby or waiting to terminate
        // may still run the old AMI after a finished deploy.
        let images = self.images(&counting(g.clone())).await?;
        if images.values().all(|i| *i == self.ami) {
            return Ok((source, image));
        }
        if t.version == "$Latest" {
            if let Some(found) = self.latest_before(t, &source).await? {
                return Ok(found);
            }
        }
        Err(InputError::whole_file(
            format!("group {}", self.name),
            format!(
                "its launch template {} {} (version {source}) already launches {}, but some of its instances run another AMI: a rollback would have no version to return to",
                t.id, t.version, self.ami
            ),
        )
        .with_hint("point the group at the template version its instances were launched from (a number), then deploy again")
        .into())
    }

    /// The newest version of `t`'s template older than `latest` that launches another AMI than
    /// this deploy's, stepping back only past versions gears made with it (a version made by
    /// hand, with the AMI and perhaps other changes, is never passed over) and versions deleted
    /// since, at most [`LOOK_BACK`] of them: `None` when there is none.
    pub(super) async fn latest_before(
        &self,
        t: &TemplateRef,
        latest: &str,
    ) -> Result<Option<(String, String)>, Error> {
        let d = self.deadline();
        let at = |m: &str| TemplateRef {
            id: t.id.clone(),
            version: m.to_owned(),
        };
        let n: u64 = latest.parse().unwrap_or(0);
        let ours = |m: &str| {
            let v = at(m);
            async move { patiently(self.cancel, d, || self.fleet.made_by_gears(&v)).await }
        };
        if !ours(latest).await? {
            return Ok(None);
        }
        for m in (1..n).rev().take(LOOK_BACK) {
            match self.version_of(&at(&m.to_string())).await {
                Ok((m, image)) if image != self.ami => return Ok(Some((m, image))),
                Ok((m, _)) if !ours(&m).await? => return Ok(None),
                Ok(_) => {}
                Err(Error::Cloud(e)) if e.kind() == crate::aws::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The number template version `t` meant when this run first read it, and that version's
    /// image: one DescribeLaunchTemplateVersions per template version a run (a version never
    /// changes, and `$Latest`/`$Default` keep the number they meant at the run's first reading;
    /// groups asking at once wait for one reading).
    pub(super) async fn version_of(&self, t: &TemplateRef) -> Result<(String, String), Error> {
        let reads = self.versions;
        let key = format!("{}/{}/{}", self.fleet.region(), t.id, t.version);
        let image_key = |n: &str| format!("image {}/{}/{n}", self.fleet.region(), t.id);
        // A number means itself; `$Latest`/`$Default` what they meant at the first reading.
        let number = t.version.parse::<u64>().is_ok().then(|| t.version.clone());
        let cached = || {
            let n = number.clone().or_else(|| reads.known(&key))?;
            let image = reads.known(&image_key(&n))?;
            Some((n, image))
        };
        if let Some(found) = cached() {
            return Ok(found);
        }
        let gate = reads.gate(&key);
        let _reading = gate.lock().await;
        if let Some(found) = cached() {
            return Ok(found);
        }
        let d = self.deadline();
        let pinned = TemplateRef {
            id: t.id.clone(),
            version: number
                .or_else(|| reads.known(&key))
                .unwrap_or(t.version.clone()),
        };
        let (n, image) = patiently(self.cancel, d, || self.fleet.version_image(&pinned)).await?;
        reads.keep(image_key(&n), image.clone());
        Ok((reads.keep(key, n), image))
    }

    /// The deploy's state for `g` going to `spec`, refused when it cannot fit the group's tag
    /// (checked with room for the version number still to come).
    fn state_of(&self, g: &Group, spec: Spec) -> Result<State, Error> {
        let state = State {
            run: self.run.clone(),
            ami: self.ami.clone(),
            lt: spec.lt,
            from: spec.from,
            fromn: spec.fromn,
            to: spec.to.clone().unwrap_or_default(),
            min: g.min,
            max: g.max,
            desired: g.desired,
            susp: SUSPEND
                .iter()
                .filter(|p| !g.suspended.iter().any(|s| s == *p))
                .map(|p| p.to_string())
                .collect(),
            lc: spec.lc,
            mx: g.mixed,
        };
        let json = state.write();
        if json.chars().count() + if spec.to.is_none() { 10 } else { 0 } > 256 {
            return Err(InputError::whole_file(
                format!("group {}", self.name),
                format!(
                    "the deploy state does not fit in a 256-character tag ({} characters): the launch configuration name `{}` is too long",
                    json.chars().count(),
                    state.from
                ),
            )
            .into());
        }
        Ok(state)
    }

    /// The deploy begun: recorded before the new template version exists (a run killed in
    /// between is continued by the same command, whose request carries the recorded run's
    /// client token and so gets the same version back, never a second one left behind), the
    /// version made, processes suspended; then in one call the deploy recorded with its
    /// version, the instance tags the group had kept (so a rollback puts them back, when they
    /// fit a tag) and the new ones; the group pointed at it.
    async fn begin(&self, g: &Group, mut state: State) -> Result<State, Error> {
        let d = self.deadline();
        self.record(&state).await?;
        let mut tags = Vec::new();
        if state.to.is_empty() {
            state.to = self.create_version(&state).await?;
            let rec = BTreeMap::from([(STATE_TAG.to_owned(), state.write())]);
            tags.extend(GroupTag::all(&self.name, &rec, false));
        }
        patiently(self.cancel, d, || {
            self.fleet.set_processes(&self.name, &state.susp, true)
        })
        .await?;
        tags.extend(self.tags_before(g));
        tags.extend(GroupTag::all(&self.name, self.instance_tags, true));
        patiently(self.cancel, d, || self.fleet.put_tag_list(&tags)).await?;
        self.point_at(&state, &state.to).await?;
        self.say(&format!(
            "locked; {} {} (was {}) with {}; suspended {}",
            if state.lc {
                "launch configuration"
            } else {
                "launch template version"
            },
            state.to,
            state.from,
            self.ami,
            if state.susp.is_empty() {
                "nothing".into()
            } else {
                state.susp.join(", ")
            }
        ));
        Ok(state)
    }

    /// The group's lock tag: refused while another live run holds it (or the line is
    /// stopped); a stale one is taken over when it is of this AMI's deploy, or when no deploy is
    /// recorded at all (its run was killed before it changed anything). A tag is no
    /// compare-and-swap: two runs that both looked before either wrote both write, and the
    /// later write wins. So without the lock table each attempt is a fresh look and one write,
    /// and the lock counts as ours only if a look [`settle`] after the write still finds our
    /// value (see [`crate::deploy::LOCK_SETTLE`] for why that wait catches a racing writer). With
    /// `--lock-table`, its compare-and-swap already shut out a racing writer (every strategy
    /// takes it first): written, and one look back, no settle.
    pub(super) async fn take_tag_lock(&self, on: &OnGroup) -> Result<(), Error> {
        self.take_tag_lock_as(on, Taking::Deploy).await
    }

    /// The group's lock tag taken as [`Roll::take_tag_lock`] does, by a deploy or by an
    /// `--abort` ([`Taking`]).
    pub(super) async fn take_tag_lock_as(&self, on: &OnGroup, taking: Taking) -> Result<(), Error> {
        let mine = LockValue::held_now(&self.run, self.who).write();
        let lock = BTreeMap::from([(LOCK_TAG.to_owned(), mine.clone())]);
        let settle = match self.table {
            Some(_) => {
                self.may_take(on, taking)?;
                let d = self.deadline();
                patiently(self.cancel, d, || {
                    self.fleet.put_tags(&self.name, &lock, false)
                })
                .await?;
                Duration::ZERO
            }
            None => self.write_settled(&lock, taking).await?,
        };
        self.looks.leases.wrote(&self.name);
        self.sleep_for(settle).await?;
        let back = self.group().await?;
        if back.tags.get(LOCK_TAG) != Some(&mine) {
            return Err(refused(
                &self.name,
                format!(
                    "another deploy took the lock at the same time: {}",
                    back.tags.get(LOCK_TAG).cloned().unwrap_or_default()
                ),
                "run again when it is done",
            ));
        }
        self.tag_ours
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The lock written in a window ([`Roll::write_in_window`]) short enough that its settle stays
    /// within a lease period: nothing renews the lock before it is read back, so a settle past
    /// that (an attempt slowed by throttling) could let it go stale under a racing writer; such
    /// an attempt is made again, a fresh look and write. The settle to wait.
    async fn write_settled(
        &self,
        lock: &BTreeMap<String, String>,
        taking: Taking,
    ) -> Result<Duration, Error> {
        let period = crate::deploy::lease::lease_period(self.settings.lock_stale);
        loop {
            let wait = settle(self.write_in_window(lock, taking).await?);
            let slow = wait > crate::deploy::LOCK_SETTLE;
            if !slow || wait < period || Instant::now() >= self.deadline() {
                return Ok(wait);
            }
        }
    }

    /// One attempt after another, until one is a fresh look that finds the lock free (or ours
    /// to take over) and then our write, answered: how long that attempt took, from its look's
    /// start. A write that fails (throttled, say) is made again only after a fresh look, never
    /// retried blind, so the attempt that counts is one look and one write, whose time the
    /// settle allows for ([`settle`]).
    async fn write_in_window(
        &self,
        lock: &BTreeMap<String, String>,
        taking: Taking,
    ) -> Result<Duration, Error> {
        let deadline = self.deadline();
        let pace = self.pace();
        loop {
            let began = Instant::now();
            let g = self.group().await?;
            self.may_take(&OnGroup::read(&g)?, taking)?;
            match self.fleet.put_tags(&self.name, lock, false).await {
                Ok(()) => return Ok(began.elapsed()),
                Err(e) if !e.is_retryable() || Instant::now() >= deadline => return Err(e.into()),
                Err(_) => pace.sleep(self).await?,
            }
        }
    }

    /// Refused while another live run holds the lock (or, for a deploy, the line is stopped); a
    /// stale one may be taken over by a deploy when it is of this AMI's deploy, or when no
    /// deploy is recorded at all, and by an `--abort` always (it checked the AMI recorded).
    fn may_take(&self, on: &OnGroup, taking: Taking) -> Result<(), Error> {
        match &on.lock {
            Some(LockValue::Stop { .. }) if taking == Taking::Abort => Ok(()),
            Some(l @ LockValue::Stop { .. }) => Err(stopped(
                &self.name,
                format!("the line is stopped: {l}"),
                "a rollback failed here: look at the group, then `gears deploy --unlock`",
            )),
            Some(l @ LockValue::Held { run, who, at }) if run != &self.run => {
                let recorded = on.recorded_ami();
                let same_ami = recorded == Some(self.ami.as_str());
                let age = l.age().unwrap_or_default();
                let may = same_ami || on.recorded.is_none() || taking == Taking::Abort;
                if may && age >= self.settings.lock_stale {
                    return Ok(());
                }
                let other = recorded.filter(|a| *a != self.ami);
                let h = Holder {
                    key: None,
                    run: run.clone(),
                    who: who.clone(),
                    at: *at,
                };
                Err(held_by_another(
                    &self.name,
                    &h,
                    self.settings.lock_stale,
                    other,
                ))
            }
            _ => Ok(()),
        }
    }

    /// The instance tags `g` had before the deploy, kept in [`TAGS_TAG`] (so a rollback puts them
    /// back), when they fit a tag: written in the call that writes the new ones, before them.
    fn tags_before(&self, g: &Group) -> Vec<GroupTag> {
        let before: BTreeMap<&String, Option<&String>> = self
            .instance_tags
            .keys()
            .map(|k| (k, g.tags.get(k)))
            .collect();
        let before = serde_json::to_string(&before).unwrap_or_default();
        if before.chars().count() > 256 {
            return Vec::new();
        }
        let tag = BTreeMap::from([(TAGS_TAG.to_owned(), before)]);
        GroupTag::all(&self.name, &tag, false)
    }

    /// Writes the deploy state to the group's tag.
    pub(super) async fn record(&self, st: &State) -> Result<(), Error> {
        let tag = BTreeMap::from([(STATE_TAG.to_owned(), st.write())]);
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &tag, false)
        })
        .await
    }

    /// The recorded deploy's new template version, from the version it recorded as its base,
    /// with the recorded run's client token (EC2 scopes a token to the account and region, so
    /// it names the template too; at most 64 characters: 5 + 32 + 17 + 1 + the version): the
    /// same request again returns the same version.
    async fn create_version(&self, st: &State) -> Result<String, Error> {
        let base = TemplateRef {
            id: st.lt.clone(),
            version: st.fromn.clone(),
        };
        let token = version_token(st);
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet.new_template_version(&base, &self.ami, &token)
        })
        .await
    }

    /// Points the group at launch spec `which` (a template version, or a configuration name).
    pub(super) async fn point_at(&self, st: &State, which: &str) -> Result<(), Error> {
        let d = self.deadline();
        if st.lc {
            patiently(self.cancel, d, || {
                self.fleet.set_configuration(&self.name, which)
            })
            .await
        } else {
            let t = TemplateRef {
                id: st.lt.clone(),
                version: which.to_owned(),
            };
            patiently(self.cancel, d, || {
                self.fleet.set_template(&self.name, &t, st.mx)
            })
            .await
        }
    }
}
