"""Every combination of identity and resource policy the evaluator distinguishes, and its exact verdict."""

import pytest

from local_mode.iam.policy import Request

from .test_iam import ACCOUNT, KEY, OTHER_ROLE, ROLE, evaluator, session

IDENTITY = {
    "none": [],
    "allow": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    "deny": [{"Sid": "NoWay", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}
RESOURCE = {
    "none": [],
    "direct": [{"Sid": "Direct", "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "*", "Resource": "*"}],
    "account": [
        {
            "Sid": "Root",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "*",
            "Resource": "*",
        }
    ],
    "deny": [{"Sid": "Fence", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}],
    "other": [{"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": OTHER_ROLE}, "Action": "*", "Resource": "*"}],
}
# target -> (action, resource, the ARN whose resource policy applies, how the test names that policy)
TARGETS = {
    "kms key": ("kms:Decrypt", KEY, KEY, "key policy"),
    "bucket object": ("s3:GetObject", "arn:aws:s3:::data/k", "arn:aws:s3:::data", "bucket policy"),
    "kms no owner": ("kms:ListKeys", "*", None, None),
}
REASONS = {
    "identity deny": "with an explicit deny in an identity-based policy: {statement}",
    "resource deny": "with an explicit deny in a resource-based policy: {statement}",
    "no identity allow": "because no identity-based policy allows the {action} action",
    "no resource allow": "because no resource-based policy allows the {action} action",
}


@pytest.mark.parametrize(
    "identity, resource_policy, target, verdict, statement",
    [
        ("none", "none", "kms key", "no resource allow", None),
        ("none", "none", "bucket object", "no identity allow", None),
        ("none", "none", "kms no owner", "no identity allow", None),
        ("none", "direct", "kms key", "allowed", "key policy [Direct]"),
        ("none", "direct", "bucket object", "allowed", "bucket policy [Direct]"),
        ("none", "direct", "kms no owner", "no identity allow", None),
        ("none", "account", "kms key", "no identity allow", None),
        ("none", "account", "bucket object", "no identity allow", None),
        ("none", "account", "kms no owner", "no identity allow", None),
        ("none", "deny", "kms key", "resource deny", "key policy [Fence]"),
        ("none", "deny", "bucket object", "resource deny", "bucket policy [Fence]"),
        ("none", "deny", "kms no owner", "no identity allow", None),
        ("none", "other", "kms key", "no resource allow", None),
        ("none", "other", "bucket object", "no identity allow", None),
        ("none", "other", "kms no owner", "no identity allow", None),
        ("allow", "none", "kms key", "no resource allow", None),
        ("allow", "none", "bucket object", "allowed", "identity"),
        ("allow", "none", "kms no owner", "allowed", "identity"),
        ("allow", "direct", "kms key", "allowed", "key policy [Direct]"),
        ("allow", "direct", "bucket object", "allowed", "identity"),
        ("allow", "direct", "kms no owner", "allowed", "identity"),
        ("allow", "account", "kms key", "allowed", "identity"),
        ("allow", "account", "bucket object", "allowed", "identity"),
        ("allow", "account", "kms no owner", "allowed", "identity"),
        ("allow", "deny", "kms key", "resource deny", "key policy [Fence]"),
        ("allow", "deny", "bucket object", "resource deny", "bucket policy [Fence]"),
        ("allow", "deny", "kms no owner", "allowed", "identity"),
        ("allow", "other", "kms key", "no resource allow", None),
        ("allow", "other", "bucket object", "allowed", "identity"),
        ("allow", "other", "kms no owner", "allowed", "identity"),
        ("deny", "none", "kms key", "identity deny", "identity [NoWay]"),
        ("deny", "none", "bucket object", "identity deny", "identity [NoWay]"),
        ("deny", "none", "kms no owner", "identity deny", "identity [NoWay]"),
        ("deny", "direct", "kms key", "identity deny", "identity [NoWay]"),
        ("deny", "direct", "bucket object", "identity deny", "identity [NoWay]"),
        ("deny", "direct", "kms no owner", "identity deny", "identity [NoWay]"),
        ("deny", "account", "kms key", "identity deny", "identity [NoWay]"),
        ("deny", "account", "bucket object", "identity deny", "identity [NoWay]"),
        ("deny", "account", "kms no owner", "identity deny", "identity [NoWay]"),
        ("deny", "deny", "kms key", "identity deny", "identity [NoWay]"),
        ("deny", "deny", "bucket object", "identity deny", "identity [NoWay]"),
        ("deny", "deny", "kms no owner", "identity deny", "identity [NoWay]"),
        ("deny", "other", "kms key", "identity deny", "identity [NoWay]"),
        ("deny", "other", "bucket object", "identity deny", "identity [NoWay]"),
        ("deny", "other", "kms no owner", "identity deny", "identity [NoWay]"),
    ],
)
def test_decision(identity, resource_policy, target, verdict, statement):
    action, resource, owner, owner_name = TARGETS[target]
    policies = evaluator(IDENTITY[identity], {owner: RESOURCE[resource_policy]} if owner else {})
    decision = policies.decide(Request(session(), action, resource))
    label = statement and statement.replace(owner_name or "-", f"policy of {owner}")
    assert (decision.allowed, decision.statement) == (verdict == "allowed", label)
    if verdict == "allowed":
        assert decision.message == "allowed"
    else:
        reason = REASONS[verdict].format(statement=label, action=action)
        assert decision.message == (
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/deploy/fn is not authorized to perform: {action} "
            f"on resource: {resource} {reason}"
        )
