//! The fleet ports ([`crate::aws::Fleet`]) on Auto Scaling, EC2 launch templates, ELBv2 and Classic
//! load balancers and CloudWatch: the clients here, each port in its file.

mod clone;
mod group_view;
mod groups;
mod launches;
mod refresh;
mod traffic;

/// The Auto Scaling, EC2 and ELBv2 clients of one region, on the shared configuration.
#[derive(Clone)]
pub struct AwsFleet {
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    classic: aws_sdk_elasticloadbalancing::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    region: String,
    /// Each source template version's metadata options, read once for all the groups of the
    /// region (see `launches::new_template_version`).
    source_metadata: launches::MetadataCache,
}

impl AwsFleet {
    /// The clients for `region`.
    pub fn new(conf: &aws_config::SdkConfig, region: &str) -> Self {
        let r = || aws_config::Region::new(region.to_owned());
        AwsFleet {
            asg: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(conf).region(r()).build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            classic: aws_sdk_elasticloadbalancing::Client::from_conf(
                aws_sdk_elasticloadbalancing::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            region: region.to_owned(),
            source_metadata: Default::default(),
        }
    }
}

impl AwsFleet {
    pub(super) fn asg(&self) -> &aws_sdk_autoscaling::Client {
        &self.asg
    }

    pub(super) fn region_name(&self) -> &str {
        &self.region
    }
}
