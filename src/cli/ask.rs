//! The command line as asks: each command's arguments become the ask type its stage resolves
//! (the same type a pipeline entry becomes), so nothing below this file sees clap.

use super::{
    AmiArgs, AmisArgs, BakeArgs, ComponentArgs, DeployArgs, ReapArgs, SmokeArgs, StatusArgs,
    TestArgs,
};
use crate::amis::AmisAsk;
use crate::bake::settings::BakeAsk;
use crate::deploy::DeployAsk;
use crate::reap::ReapAsk;
use crate::settings::AmiChoice;
use crate::smoke::settings::SmokeAsk;
use crate::status::StatusAsk;
use crate::test_stage::settings::TestAsk;

impl From<&SmokeArgs> for SmokeAsk {
    fn from(a: &SmokeArgs) -> Self {
        SmokeAsk {
            host: a.host.clone(),
            file: a.file.clone(),
            jobs: Some(a.jobs),
            wait: a.wait,
            sleep: a.sleep,
            junit: a.junit.clone(),
            output: a.output.format,
            heartbeat: Some(a.heartbeat),
        }
    }
}

impl From<&ComponentArgs> for BakeAsk {
    /// What `gears validate` asks (and the part of `gears bake` it shares).
    fn from(a: &ComponentArgs) -> Self {
        BakeAsk {
            version: a.build.version.clone(),
            git_sha: a.build.git_sha.clone(),
            endpoint_url: a.endpoint.url.clone(),
            packer: Some(a.build.packer.clone()),
            work_dir: Some(a.build.work_dir.clone()),
            ..BakeAsk::new(a.file.path.clone())
        }
    }
}

impl From<&BakeArgs> for BakeAsk {
    fn from(a: &BakeArgs) -> Self {
        BakeAsk {
            manifest: Some(a.manifest.clone()),
            dry_run: a.dry_run,
            explain: a.explain,
            force: a.force,
            output: a.output.format,
            heartbeat: Some(a.heartbeat),
            ..BakeAsk::from(&a.component)
        }
    }
}

impl From<&AmiArgs> for AmiChoice {
    /// `--ami` with `--region`, else the manifest's AMI (of `--builder`, in `--region`).
    fn from(a: &AmiArgs) -> Self {
        match (&a.ami, &a.region.name) {
            (Some(ami), Some(region)) => AmiChoice::Explicit {
                ami: ami.clone(),
                region: region.clone(),
            },
            _ => AmiChoice::Manifest {
                path: a.manifest.clone(),
                builder: a.builder.clone(),
                region: a.region.name.clone(),
            },
        }
    }
}

impl From<&TestArgs> for TestAsk {
    fn from(a: &TestArgs) -> Self {
        let ami = AmiChoice::from(&a.ami);
        TestAsk {
            target_host: a.target_host.clone(),
            ready_timeout: Some(a.ready_timeout),
            ttl: Some(a.ttl),
            keep_on_failure: a.keep_on_failure,
            junit: a.junit.clone(),
            output: a.output.format,
            heartbeat: Some(a.heartbeat),
            jobs: Some(a.jobs),
            endpoint_url: a.endpoint.url.clone(),
            work_dir: Some(a.work_dir.clone()),
            role: a.role.role(),
            version: a.version.clone(),
            ..TestAsk::new(a.component.path.clone(), ami)
        }
    }
}

impl From<&DeployArgs> for DeployAsk {
    fn from(a: &DeployArgs) -> Self {
        let ami = AmiChoice::from(&a.ami);
        DeployAsk {
            country: a.country.clone(),
            groups: a.groups.clone(),
            batch: a.batch,
            strategy: a.strategy,
            keep_old: a.keep_old,
            scale_old_to: a.scale_old_to,
            keep_groups: a.keep_groups,
            rollback: a.rollback,
            gate_timeout: a.gate_timeout,
            poll: a.poll,
            smoke_target: a.smoke_target.clone(),
            no_smoke: a.no_smoke,
            lock_table: a.lock_table.clone(),
            alarms: a.alarms.clone(),
            bake_time: a.bake_time,
            parallel: a.parallel,
            min_healthy: a.min_healthy,
            plan_only: a.plan,
            abort: a.abort,
            unlock: a.unlock,
            endpoint_flag: a.endpoint.url.clone(),
            role: a.role.role(),
            ..DeployAsk::new(a.component.path.clone(), ami, &a.environment)
        }
    }
}

impl From<&StatusArgs> for StatusAsk {
    fn from(a: &StatusArgs) -> Self {
        StatusAsk {
            component_file: a.component.path.clone(),
            environments: a.environment.clone(),
            regions: a.regions.names.clone(),
            watch: a.watch,
            poll: a.poll,
            output: a.output.format,
            endpoint_url: a.endpoint.url.clone(),
            role: a.role.role(),
        }
    }
}

impl From<&ReapArgs> for ReapAsk {
    fn from(a: &ReapArgs) -> Self {
        ReapAsk {
            regions: a.regions.names.clone(),
            yes: a.yes,
            ttl: a.ttl,
            output: a.output.format,
            endpoint_url: a.endpoint.url.clone(),
            role: a.role.role(),
        }
    }
}

impl From<&AmisArgs> for AmisAsk {
    fn from(a: &AmisArgs) -> Self {
        AmisAsk {
            component_file: a.component.path.clone(),
            regions: a.regions.names.clone(),
            endpoint_url: a.endpoint.url.clone(),
            role: a.role.role(),
        }
    }
}

#[cfg(test)]
#[path = "ask_tests.rs"]
mod tests;
