"""An execution that times out (the state machine's own TimeoutSeconds) still gets its Cleanup.

In a module of its own: it needs an emulated account with a template whose timeout is 45 seconds.
"""

import copy

from local_mode.run import RunRequest, prepare_input
from tests.e2e.conftest import EXAMPLE_DATA, local_aws
from tests.e2e.test_every_ending import long_training_input, wait_for_training


def with_timeout(template, seconds):
    """The template with the state machine's own TimeoutSeconds (72 hours) set to `seconds`."""
    template = copy.deepcopy(template)
    replaced = 0
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
            for index, part in enumerate(parts):
                if isinstance(part, str) and '"TimeoutSeconds":259200' in part:
                    parts[index] = part.replace('"TimeoutSeconds":259200', f'"TimeoutSeconds":{seconds}')
                    replaced += 1
    assert replaced == 1
    return template


def test_an_execution_that_times_out_is_cleaned_up(stack_template, tiny_model, tmp_path):
    stack_name, template = stack_template
    with local_aws(tmp_path, (stack_name, with_timeout(template, 45))) as aws:
        execution_input = prepare_input(
            aws, RunRequest(long_training_input(), "times-out", model_dir=tiny_model, dataset=EXAMPLE_DATA)
        )
        arn = aws.start_execution(execution_input, "times-out")
        training = wait_for_training(aws)
        aws.wait(arn, timeout=300)
        assert aws.sfn.describe_execution(executionArn=arn)["status"] == "TIMED_OUT"
        [delivery] = aws.endings.wait_delivered(arn, timeout=120)
        assert delivery["result"]["status"] == "TIMED_OUT"
        assert delivery["result"]["error"] == "States.Timeout"
        assert delivery["result"]["stopped_jobs"] == [training["name"]]
        assert aws.iam.summary()["denied"] == 0, aws.iam.summary()["denials"]
