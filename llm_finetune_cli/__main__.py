import sys

from llm_finetune_cli.cli import main

sys.exit(main())
