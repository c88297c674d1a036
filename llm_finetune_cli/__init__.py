"""`llm-finetune`: start, follow and stop fine-tuning runs of the deployed stack, or of local mode.

The commands find everything through the stack's CloudFormation outputs and talk to AWS with
boto3 only; `--local` points the same clients at the emulated account local mode serves.
"""
