"""Chat formatting shared by training, evaluation and the endpoint check.

A fine-tuned model only stops generating if every assistant turn it was trained on ends with the
token generation stops at (the EOS token). These helpers make sure the tokenizer's chat template
does that, render prompts the same way everywhere, and turn a conversation into input ids and
labels where only the assistant's tokens (including that EOS) carry loss.

Prompts are rendered to text and encoded with ``add_special_tokens=False``: the template itself
writes any BOS token, so the encoded prompt is exactly what training saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_formats import RowError, validate_messages

IGNORE_INDEX = -100

# Used when a (base) model has no chat template. Plain-text role markers work with any vocabulary;
# each assistant turn ends with the tokenizer's EOS token so the model learns to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_PROBE_CONTENT = "PROBE-ANSWER-7731"


class ChatFormatError(ValueError):
    """A conversation or chat template that cannot be used for training."""


@dataclass(frozen=True)
class EncodedConversation:
    """Token ids of one rendered conversation and its labels (IGNORE_INDEX off the assistant turns)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def ensure_chat_template(tokenizer: Any) -> Any:
    """Give `tokenizer` a chat template whose assistant turns end with its EOS token, and a pad token.

    An existing template is kept when its assistant turns already end with EOS. When they end with
    another special token instead (an end-of-turn token such as ``<|im_end|>``), that token becomes
    the EOS token, since it is what the model was taught to emit. Otherwise the default template is
    installed. Returns the same tokenizer, changed in place.
    """
    if tokenizer.eos_token is None:
        raise ChatFormatError("tokenizer has no eos_token; a chat model needs one to learn where an answer ends")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not _template_of(tokenizer):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
        return tokenizer
    end_of_turn = _text_after_assistant_content(tokenizer)
    if end_of_turn.startswith(tokenizer.eos_token):
        return tokenizer
    special = _leading_special_token(tokenizer, end_of_turn)
    if special is not None:
        tokenizer.eos_token = special
    else:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def assistant_turns_end_with_eos(tokenizer: Any) -> bool:
    """True when the chat template writes the EOS token right after each assistant message."""
    if not _template_of(tokenizer) or tokenizer.eos_token is None:
        return False
    return _text_after_assistant_content(tokenizer).startswith(tokenizer.eos_token)


def prompt_messages(messages: Sequence[dict]) -> list[dict]:
    """The conversation without its final assistant turn (the answer the model must produce)."""
    messages = list(messages)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return messages


def render_prompt(tokenizer: Any, messages: Sequence[dict]) -> str:
    """Render everything but the final assistant turn, ending with the assistant's generation prompt.

    Evaluation, the local endpoint and the live endpoint check all send exactly this text.
    """
    prompt = prompt_messages(messages)
    if not prompt:
        raise ChatFormatError("messages: a prompt needs at least one message before the assistant's answer")
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer: Any, messages: Sequence[dict]) -> list[int]:
    """Token ids of `render_prompt`, encoded without adding special tokens a second time."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def encode_conversation(tokenizer: Any, messages: Sequence[dict]) -> EncodedConversation:
    """Tokenize a whole conversation; labels keep only assistant content and its closing EOS.

    Assistant spans are found by rendering the conversation up to each assistant turn with and
    without it, so this works for any template that renders earlier turns the same way whatever
    follows them (all common chat templates do).
    """
    _check_messages(messages)
    full_text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = _assistant_spans(tokenizer, messages, full_text)
    encoding = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    for index, (start, end) in enumerate(encoding["offset_mapping"]):
        if end > start and any(start < span_end and end > span_start for span_start, span_end in spans):
            labels[index] = input_ids[index]
    return EncodedConversation(input_ids=input_ids, labels=labels)


def _assistant_spans(tokenizer: Any, messages: Sequence[dict], full_text: str) -> list[tuple[int, int]]:
    spans = []
    eos = tokenizer.eos_token
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(list(messages[:index]), tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False)
        if not (through.startswith(before) and full_text.startswith(through)):
            raise ChatFormatError(
                "chat template renders earlier turns differently depending on what follows them; "
                "assistant-only labels need a prefix-preserving template"
            )
        start, end = len(before), len(through)
        # The answer ends at its EOS token: whatever the template writes after it (a newline) is not trained.
        eos_at = full_text.rfind(eos, start, end) if eos else -1
        if eos_at >= 0:
            end = eos_at + len(eos)
        spans.append((start, end))
    return spans


def _check_messages(messages: Sequence[dict]) -> None:
    """The same rules prepare_data applies, for data sets that reach training some other way."""
    try:
        validate_messages(messages)
    except RowError as error:
        raise ChatFormatError(str(error)) from error


def _template_of(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or None


def _text_after_assistant_content(tokenizer: Any) -> str:
    conversation = [{"role": "user", "content": "question"}, {"role": "assistant", "content": _PROBE_CONTENT}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    at = text.find(_PROBE_CONTENT)
    if at < 0:
        raise ChatFormatError("chat template does not write the assistant's message content")
    return text[at + len(_PROBE_CONTENT) :]


def _leading_special_token(tokenizer: Any, text: str) -> str | None:
    candidates = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    matches = [token for token in candidates if token and text.startswith(token)]
    return max(matches, key=len) if matches else None
