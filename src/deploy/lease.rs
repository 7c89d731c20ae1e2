//! The tag locks a region holds, renewed together: one CreateOrUpdateTags per lease period
//! carries the `gears:deploy-lock` tag of every group whose lock is due, so what the locks
//! cost grows with time, never with time × groups (a region of 20 groups waiting a minute
//! writes 4 renewals, not 80).
use crate::aws::{Fleet, Group, GroupTag};
use crate::deploy::lock::LockValue;
use crate::deploy::LOCK_TAG;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// How often a lock is renewed: a quarter of the stale limit (1 to 15 s), so a live deploy's
/// lock is never older than half of it, and hosts' clocks may disagree by the rest.
pub(super) fn lease_period(stale: Duration) -> Duration {
    (stale / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// The region's held tag locks and when each was last written.
#[derive(Default)]
pub struct Leases {
    /// The groups whose lock is renewed now: those of a group's steps under way with its
    /// heartbeat ([`super::roll::Roll::with_heartbeat`]), once its lock tag is its run's.
    held: std::sync::Mutex<BTreeSet<String>>,
    /// When each group's lock tag was last written by this run.
    written: std::sync::Mutex<BTreeMap<String, Instant>>,
    /// Held across a renewal's write: a group let go waits for a renewal in flight, so no
    /// renewal writes a lock after its group was let go (and its lock perhaps removed).
    writing: tokio::sync::Mutex<()>,
    /// The groups whose lock a look showed lost ([`Leases::forget_lost`]): never held again,
    /// unless this run writes its lock anew.
    lost: std::sync::Mutex<BTreeSet<String>>,
}

impl Leases {
    /// `group`'s lock tag was written now.
    pub(super) fn wrote(&self, group: &str) {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_owned(), Instant::now());
    }

    /// `group`'s lock is renewed from now on (until [`Leases::let_go`]).
    pub(super) fn hold(&self, group: &str) {
        if self
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(group)
        {
            return;
        }
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_owned());
    }

    /// `group`'s lock is no longer renewed; once this returns, no renewal of it is in flight.
    pub(super) async fn let_go(&self, group: &str) {
        let _w = self.writing.lock().await;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }

    /// The held groups whose lock was last written at least half a period ago (one written
    /// since waits for the next renewal: at most 1.5 periods between two writes).
    fn due(&self, every: Duration) -> Vec<String> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        held.into_iter()
            .filter(|g| written.get(g).is_none_or(|at| at.elapsed() >= every / 2))
            .collect()
    }

    /// Renews every due lock with `value` in one call (one per [`crate::aws::TAGS_PER_CALL`]).
    /// When that call fails (a group deleted by hand makes AWS refuse the whole call), each
    /// group is renewed alone, so one group cannot let the others' locks go stale; a group
    /// that still fails is tried again at the next period.
    pub(super) async fn renew<F: Fleet>(&self, fleet: &F, value: &str, every: Duration) {
        let _w = self.writing.lock().await;
        let due = self.due(every);
        if due.is_empty() {
            return;
        }
        let tag = |g: &String| GroupTag {
            group: g.clone(),
            key: LOCK_TAG.to_owned(),
            value: value.to_owned(),
            propagate: false,
        };
        let all: Vec<GroupTag> = due.iter().map(tag).collect();
        let renewed = match fleet.put_tag_list(&all).await {
            Ok(()) => due,
            // One group refused (deleted by hand) refuses the call: each alone. Throttling is
            // not fanned out into more calls: the next period tries again.
            Err(e) if due.len() > 1 && !e.is_retryable() => {
                let mut ok = Vec::new();
                for g in due {
                    if fleet.put_tag_list(&[tag(&g)]).await.is_ok() {
                        ok.push(g);
                    }
                }
                ok
            }
            Err(_) => Vec::new(),
        };
        for g in renewed {
            self.wrote(&g);
        }
    }

    /// Renews the region's due locks once a period (a lock is at most 1.5 periods old, 3/8 of
    /// the stale limit), for as long as it is polled (the region's groups run beside it). A
    /// renewal in flight is never dropped (a dropped request may still land after its group
    /// was let go and its lock removed): the SDK's own call timeout bounds it. Before each
    /// renewal, the region's last finished look (`seen`) says which locks were lost
    /// ([`Leases::forget_lost`]): those are not written again.
    pub(super) async fn keep<F: Fleet>(
        &self,
        fleet: &F,
        seen: &std::sync::Mutex<Option<(Instant, Vec<Group>)>>,
        (run, who): (&str, &str),
        stale: Duration,
    ) -> std::convert::Infallible {
        let every = lease_period(stale);
        loop {
            tokio::time::sleep(every).await;
            let look = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((at, groups)) = look {
                self.forget_lost(at, &groups, run);
            }
            let value = LockValue::held_now(run, who).write();
            self.renew(fleet, &value, every).await;
        }
    }

    /// A held group whose lock a look begun after this run last wrote it shows as another run's
    /// (it took our lock over, presumed dead), a STOP, or gone (`--unlock`) is renewed no more: a
    /// renewal would write over the run that owns the group now. The group's own steps see the
    /// same look and stop.
    pub(super) fn forget_lost(&self, at: Instant, groups: &[Group], run: &str) {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|name| {
            let Some(g) = groups.iter().find(|g| &g.name == name) else {
                return true;
            };
            if written.get(name).is_none_or(|w| *w >= at) {
                return true;
            }
            let lock = g.tags.get(LOCK_TAG).map(|v| LockValue::parse(v));
            let ours = matches!(lock, Some(Ok(l)) if !l.is_stop() && l.run() == run);
            if !ours {
                lost.insert(name.clone());
            }
            ours
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::FakeCloud;
    use crate::aws::{Cloud, Group, Groups, TemplateRef};

    fn group(name: &str) -> Group {
        Group {
            name: name.into(),
            min: 0,
            max: 1,
            desired: 0,
            template: Some(TemplateRef {
                id: "lt-1".into(),
                version: "1".into(),
            }),
            mixed: false,
            override_templates: vec![],
            launch_configuration: None,
            members: vec![],
            target_groups: vec![],
            load_balancers: vec![],
            other_traffic: vec![],
            units: None,
            warm_pool: false,
            suspended: vec![],
            tags: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_call_renews_every_due_lock_and_a_missing_group_does_not_stop_the_others() {
        let cloud = FakeCloud::new();
        for g in ["a", "b", "c"] {
            cloud.add_group(group(g), &["ami-1"]);
        }
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let every = Duration::from_secs(15);
        let leases = Leases::default();
        for g in ["a", "b", "c"] {
            leases.wrote(g);
            leases.hold(g);
        }
        // Written just now: nothing is due.
        leases.renew(&fleet, "v1", every).await;
        assert!(cloud.tag_calls().is_empty());
        // Half a period on: one call renews all three.
        tokio::time::advance(every / 2).await;
        leases.renew(&fleet, "v2", every).await;
        let calls = cloud.tag_calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].groups.len(), 3, "{calls:?}");
        // A group let go is renewed no more; one deleted by hand makes AWS refuse the call,
        // and the others are renewed one by one.
        leases.let_go("a").await;
        fleet.delete_group("b").await.unwrap();
        tokio::time::advance(every).await;
        leases.renew(&fleet, "v3", every).await;
        let lock = |g: &str| cloud.group(g).unwrap().tags.get(LOCK_TAG).cloned();
        assert_eq!(lock("a").as_deref(), Some("v2"));
        assert_eq!(lock("c").as_deref(), Some("v3"));
    }

    /// A lock another run took over (or removed) after this run last wrote it is not written
    /// again; one a look from before that write shows otherwise still is.
    #[tokio::test(start_paused = true)]
    async fn a_lock_another_run_took_over_is_not_renewed() {
        let leases = Leases::default();
        let mine = LockValue::held_now("run-1", "host").write();
        let theirs = LockValue::held_now("run-2", "host").write();
        let seen = |tags: &[(&str, &str)]| {
            ["a", "b", "c", "d"]
                .iter()
                .zip(tags)
                .map(|(n, (k, v))| {
                    let mut g = group(n);
                    if !k.is_empty() {
                        g.tags.insert(k.to_string(), v.to_string());
                    }
                    g
                })
                .collect::<Vec<_>>()
        };
        let before = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        for g in ["a", "b", "c", "d"] {
            leases.wrote(g);
            leases.hold(g);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        let after = Instant::now();
        let look = seen(&[
            (LOCK_TAG, &mine),
            (LOCK_TAG, &theirs),
            ("", ""),
            (LOCK_TAG, "STOP run-1: rollback failed"),
        ]);
        // A look from before our write says nothing of our lock.
        leases.forget_lost(before, &look, "run-1");
        assert_eq!(leases.held.lock().unwrap().len(), 4);
        leases.forget_lost(after, &look, "run-1");
        let held: Vec<String> = leases.held.lock().unwrap().iter().cloned().collect();
        assert_eq!(held, ["a"]);
        // The group's heartbeat asking again does not hold a lost lock; this run writing its
        // lock anew does.
        leases.hold("b");
        assert!(!leases.held.lock().unwrap().contains("b"));
        leases.wrote("b");
        leases.hold("b");
        assert!(leases.held.lock().unwrap().contains("b"));
    }

    /// Through [`Leases::keep`]: the region's last finished look showing another run's lock
    /// stops the renewals of it, even while another look is being taken (and holds the lock of
    /// the region's looks).
    #[tokio::test(start_paused = true)]
    async fn keep_stops_renewing_a_lock_the_last_look_shows_lost() {
        use crate::deploy::region::RegionLooks;
        let cloud = FakeCloud::new();
        for g in ["a", "b"] {
            cloud.add_group(group(g), &["ami-1"]);
        }
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let stale = Duration::from_secs(60);
        let names = vec!["a".to_owned(), "b".to_owned()];
        let looks = RegionLooks::new(names.clone());
        let mine = LockValue::held_now("run-1", "h").write();
        for g in ["a", "b"] {
            cloud.fake_fleet_tag(g, LOCK_TAG, &mine);
            looks.leases.wrote(g);
            looks.leases.hold(g);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        // Another run took b's stale lock over; a look sees it.
        let theirs = LockValue::held_now("run-2", "host").write();
        cloud.fake_fleet_tag("b", LOCK_TAG, &theirs);
        let none = BTreeMap::new();
        let fetch = || async { Ok(fleet.groups(&none, &names).await?) };
        looks.groups(Instant::now(), fetch).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        // The next look never ends (AWS slow): the renewals go on meanwhile.
        let hung = looks.groups(Instant::now(), std::future::pending);
        let kept = looks
            .leases
            .keep(&fleet, &looks.seen, ("run-1", "h"), stale);
        tokio::select! {
            _ = hung => unreachable!(),
            _ = tokio::time::sleep(lease_period(stale) * 3) => {}
            never = kept => match never {},
        }
        let lock = |g: &str| cloud.group(g).unwrap().tags.get(LOCK_TAG).cloned();
        assert_ne!(lock("a"), Some(mine), "a renewed");
        assert!(lock("a").unwrap().starts_with("run-1 "), "{:?}", lock("a"));
        assert_eq!(lock("b"), Some(theirs));
    }
}
