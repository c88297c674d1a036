"""Jobs and servers start from a consistent environment without the running Lambda's variables."""

import os
import threading

from local_mode import process_env


def test_a_snapshot_taken_while_a_lambda_runs_has_none_of_its_variables(monkeypatch):
    monkeypatch.setenv("OPERATOR_SETTING", "kept")
    monkeypatch.delenv("ARTIFACTS_BUCKET", raising=False)
    with process_env.lambda_variables({"ARTIFACTS_BUCKET": "bucket", "OPERATOR_SETTING": "lambda's"}):
        assert os.environ["ARTIFACTS_BUCKET"] == "bucket"
        snapshot = process_env.snapshot()
    assert "ARTIFACTS_BUCKET" not in snapshot and snapshot["OPERATOR_SETTING"] == "kept"
    assert "ARTIFACTS_BUCKET" not in os.environ and os.environ["OPERATOR_SETTING"] == "kept"


def test_snapshots_never_race_with_lambdas_setting_and_removing_variables():
    errors, done = [], threading.Event()

    def lambdas():
        for index in range(2000):
            with process_env.lambda_variables({f"LAMBDA_VARIABLE_{index % 50}": "x", "ARTIFACTS_BUCKET": "b"}):
                pass
        done.set()

    def jobs():
        while not done.is_set():
            try:
                assert "ARTIFACTS_BUCKET" not in process_env.snapshot()
            except Exception as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=lambdas), threading.Thread(target=jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
