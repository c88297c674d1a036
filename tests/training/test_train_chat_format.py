"""Chat formatting: assistant turns end with EOS, prompts render identically, labels cover answers only."""

import pytest
from chat_format import (
    DEFAULT_CHAT_TEMPLATE,
    IGNORE_INDEX,
    ChatFormatError,
    assistant_turns_end_with_eos,
    encode_conversation,
    encode_prompt,
    ensure_chat_template,
    render_prompt,
)
from transformers import AutoTokenizer

CONVERSATION = [
    {"role": "system", "content": "CREATE TABLE teams (name VARCHAR, wins INTEGER)"},
    {"role": "user", "content": "Which team has 10 wins?"},
    {"role": "assistant", "content": "SELECT name FROM teams WHERE wins = 10"},
]

CHATML_END_OF_TURN = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def bare_tokenizer(tiny_model_dir):
    """The tiny tokenizer as a base model would ship it: no chat template, no pad token."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    tokenizer.pad_token = None
    return tokenizer


def test_base_tokenizer_gets_template_ending_assistant_turns_with_eos(bare_tokenizer):
    tokenizer = ensure_chat_template(bare_tokenizer)
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert tokenizer.pad_token == tokenizer.eos_token
    assert assistant_turns_end_with_eos(tokenizer)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert "SELECT name FROM teams WHERE wins = 10" + tokenizer.eos_token in text


def test_template_already_ending_with_eos_is_kept(bare_tokenizer):
    custom = "{# own #}" + DEFAULT_CHAT_TEMPLATE
    bare_tokenizer.chat_template = custom
    assert ensure_chat_template(bare_tokenizer).chat_template == custom


def test_end_of_turn_special_token_becomes_eos(bare_tokenizer):
    bare_tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    bare_tokenizer.chat_template = CHATML_END_OF_TURN
    tokenizer = ensure_chat_template(bare_tokenizer)
    assert tokenizer.chat_template == CHATML_END_OF_TURN
    assert tokenizer.eos_token == "<|im_end|>"
    assert assistant_turns_end_with_eos(tokenizer)


def test_template_without_any_end_marker_is_replaced(bare_tokenizer):
    bare_tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert ensure_chat_template(bare_tokenizer).chat_template == DEFAULT_CHAT_TEMPLATE


def test_render_prompt_drops_the_answer_and_adds_generation_prompt(tiny_tokenizer):
    prompt = render_prompt(tiny_tokenizer, CONVERSATION)
    assert "SELECT" not in prompt
    assert prompt.endswith("<|assistant|>\n")
    assert render_prompt(tiny_tokenizer, CONVERSATION[:2]) == prompt


def test_prompt_tokens_are_a_prefix_of_training_tokens(tiny_tokenizer):
    encoded = encode_conversation(tiny_tokenizer, CONVERSATION)
    prompt_ids = encode_prompt(tiny_tokenizer, CONVERSATION)
    assert encoded.input_ids[: len(prompt_ids)] == prompt_ids


def test_labels_cover_only_assistant_answer_and_its_eos(tiny_tokenizer):
    encoded = encode_conversation(tiny_tokenizer, CONVERSATION)
    prompt_length = len(encode_prompt(tiny_tokenizer, CONVERSATION))
    assert all(label == IGNORE_INDEX for label in encoded.labels[:prompt_length])
    trained = [token for token, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert trained[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(trained[:-1]) == CONVERSATION[-1]["content"]
    # The newline the template writes after EOS is not trained.
    assert encoded.labels[-1] == IGNORE_INDEX


def test_every_assistant_turn_of_a_multi_turn_conversation_is_trained(tiny_tokenizer):
    conversation = [
        *CONVERSATION,
        {"role": "user", "content": "And with 3 wins?"},
        {"role": "assistant", "content": "SELECT name FROM teams WHERE wins = 3"},
    ]
    encoded = encode_conversation(tiny_tokenizer, conversation)
    trained = [token for token, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert trained.count(tiny_tokenizer.eos_token_id) == 2
    assert "And with" not in tiny_tokenizer.decode(trained)


@pytest.mark.parametrize(
    "messages, field",
    [
        ([], "empty"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
        ([{"role": "user", "content": "only a question"}], "last message must be the assistant's answer"),
        ([{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}], "messages[0].role"),
    ],
)
def test_bad_conversations_name_the_problem(tiny_tokenizer, messages, field):
    with pytest.raises(ChatFormatError, match=field.replace("[", r"\[").replace("]", r"\]")):
        encode_conversation(tiny_tokenizer, messages)
