"""Test-wide settings: nothing may reach the network, and CPU threads stay few (CI has 2 cores)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# jsii (behind aws-cdk-lib) prints a large banner on every synth when Node.js 20 runs it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Fake credentials: moto never needs real ones, and no test may find a real account.
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}.items():
    os.environ[key] = value

# Import roots (pyproject.toml's `pythonpath`): the checkout, lambdas/ (handlers import their shared
# code as `common`, as they do inside AWS Lambda) and training/ (scripts import their siblings by
# bare name, as they do inside the containers).
