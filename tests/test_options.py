"""Typed method options: one default per setting, unknown keys named with the valid ones, coercion from text."""

import pytest

from sensecf.errors import ConfigError
from sensecf.generators.base import method_options
from sensecf.generators.options import CfnowOptions, LLMOptions, NiceOptions, scoped


def test_defaults_live_in_the_typed_options():
    assert method_options("cfnow-greedy", {}) == CfnowOptions()
    assert CfnowOptions().cfnow_time_limit == 10.0 and NiceOptions().nice_justified is True
    opts = method_options("llm-few-shot", {"k": "2", "allow_remote": "false", "temperature": 0.5})
    assert isinstance(opts, LLMOptions) and (opts.k, opts.allow_remote, opts.temperature) == (2, False, 0.5)


def test_unknown_keys_are_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown option 'cfnow_time_limt' \(did you mean 'cfnow_time_limit'\?\);"
                                          r" valid options: .*dice_sample_size"):
        method_options("nice-sparsity", {"cfnow_time_limt": 3})
    with pytest.raises(ConfigError, match=r"nice-sparsity has no option 'backend'; its options: nice_justified"):
        method_options("nice-sparsity", {"nice-sparsity.backend": "embedded"})
    with pytest.raises(ConfigError, match="'dice-nope' is not a counterfactual method"):
        method_options("dice-random", {"dice-nope.k": 1})


def test_values_are_type_checked():
    with pytest.raises(ConfigError, match="option k='many'.*whole number"):
        method_options("llm-few-shot", {"k": "many"})
    with pytest.raises(ConfigError, match="prompt_style.*paper, compact"):
        method_options("llm-few-shot", {"prompt_style": "verse"})
    with pytest.raises(ConfigError, match="must be positive"):
        method_options("cfnow-random", {"cfnow_time_limit": 0})
    with pytest.raises(ConfigError, match="temperature > 0"):
        method_options("llm-fine-tuned", {"candidates": 3, "temperature": 0})


def test_scoped_keys_override_for_one_method_only():
    options = {"backend": "openai:base", "llm-fine-tuned.backend": "openai:tuned", "cfnow_time_limit": 2}
    assert scoped("llm-fine-tuned", options)["backend"] == "openai:tuned"
    assert scoped("llm-zero-shot", options)["backend"] == "openai:base"
    assert method_options("llm-fine-tuned", options).backend == "openai:tuned"
    assert method_options("cfnow-greedy", options).cfnow_time_limit == 2.0
