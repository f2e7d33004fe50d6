//! The IAM permissions the AWS cloud needs: the one list that
//! `docs/aws-iam-policy.json` must allow, no more and no less. Tests hold the
//! three together: every SDK call in this module names an action listed here,
//! every action listed is allowed by the documented policy and nothing else is,
//! and the policy's tag-key condition allows exactly `cloud::tags`.

/// Every IAM action the coordinator uses on AWS.
pub const IAM_ACTIONS: &[&str] = &[
    // compute.rs: images by tag, idempotent launches, describe, terminate.
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    // Tags given in RunInstances' TagSpecifications are authorized as CreateTags.
    "ec2:CreateTags",
    // A launch with an instance profile passes its role to EC2.
    "iam:PassRole",
    // elb.rs: classic load balancers per project and environment.
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:ConfigureHealthCheck",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:DescribeInstanceHealth",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
    // dns.rs: the public records promotion moves.
    "route53:ListHostedZones",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:GetChange",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::IAM_ACTIONS;
    use slipway_domain::cloud::tags::INSTANCE_TAG_KEYS;

    const POLICY: &str = include_str!("../../../docs/aws-iam-policy.json");

    /// The sources of this module and the IAM service their SDK client speaks.
    const SOURCES: [(&str, &str, &str); 3] = [
        ("ec2", "ec2", include_str!("compute.rs")),
        ("elb", "elasticloadbalancing", include_str!("elb.rs")),
        ("route53", "route53", include_str!("dns.rs")),
    ];

    fn policy() -> Value {
        serde_json::from_str(POLICY).expect("docs/aws-iam-policy.json is JSON")
    }

    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().flat_map(strings).collect(),
            _ => vec![],
        }
    }

    /// `client.operation_name(` after `.client` (rustfmt may break the chain
    /// between them), as the IAM action `service:OperationName`.
    fn sdk_calls(client: &str, service: &str, source: &str) -> BTreeSet<String> {
        let needle = format!(".{client}");
        let mut calls = BTreeSet::new();
        for (at, _) in source.match_indices(&needle) {
            let rest = &source[at + needle.len()..];
            let Some(rest) = rest.trim_start().strip_prefix('.') else {
                continue;
            };
            let Some(method) = rest.split('(').next() else {
                continue;
            };
            if !method.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let camel: String = method
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or(String::new(), |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect();
            calls.insert(format!("{service}:{camel}"));
        }
        calls
    }

    #[test]
    fn every_sdk_call_of_the_aws_cloud_is_a_listed_action() {
        let mut found = 0;
        for (client, service, source) in SOURCES {
            for call in sdk_calls(client, service, source) {
                found += 1;
                assert!(
                    IAM_ACTIONS.contains(&call.as_str()),
                    "the AWS cloud calls {call}, which permissions::IAM_ACTIONS (and so the documented policy) does not list"
                );
            }
        }
        // The scan itself works: it sees the calls this module is known to make.
        assert!(
            found >= 16,
            "found only {found} SDK calls: is the scan broken?"
        );
        assert!(sdk_calls("ec2", "ec2", SOURCES[0].2).contains("ec2:RunInstances"));
    }

    #[test]
    fn the_documented_policy_allows_exactly_the_listed_actions() {
        let policy = policy();
        let statements = policy["Statement"].as_array().expect("statements");
        let mut allowed = BTreeSet::new();
        for statement in statements {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            allowed.extend(strings(&statement["Action"]));
        }
        let listed: BTreeSet<String> = IAM_ACTIONS.iter().map(|a| a.to_string()).collect();
        let missing: Vec<_> = listed.difference(&allowed).collect();
        let extra: Vec<_> = allowed.difference(&listed).collect();
        assert!(missing.is_empty(), "the policy does not allow {missing:?}");
        assert!(
            extra.is_empty(),
            "the policy allows {extra:?}, which Slipway never uses"
        );
    }

    #[test]
    fn the_policy_lets_a_launch_carry_exactly_the_tags_slipway_writes() {
        let policy = policy();
        let launch = policy["Statement"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Sid"] == "LaunchOnlyTaggedInstances"))
            .expect("a LaunchOnlyTaggedInstances statement");
        let keys: BTreeSet<String> =
            strings(&launch["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"])
                .into_iter()
                .collect();
        let written: BTreeSet<String> = INSTANCE_TAG_KEYS.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys, written,
            "the policy's aws:TagKeys must list every tag a launch carries (cloud::tags), or AWS refuses every launch"
        );
        assert_eq!(
            launch["Condition"]["Null"]["aws:RequestTag/slipway:deployment"], "false",
            "a launch must carry the deployment tag that termination is limited to"
        );
    }
}
