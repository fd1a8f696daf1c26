"""Who serves a host: the `provider` column. One table, matched by exact host or domain suffix."""

from __future__ import annotations

import re

# (host, a suffix starting with "." or "-", or a host with "*" for one DNS label, provider).
# First match wins.
PROVIDERS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("chatgpt.com", "openai"),
    (".openai.azure.com", "azure-openai"),
    (".cognitiveservices.azure.com", "azure-openai"),
    (".services.ai.azure.com", "azure-ai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("cloudcode-pa.googleapis.com", "gemini-code-assist"),  # Gemini CLI's "Login with Google"
    ("aiplatform.googleapis.com", "vertex"),
    (".aiplatform.googleapis.com", "vertex"),
    ("-aiplatform.googleapis.com", "vertex"),  # regional: us-east5-aiplatform.googleapis.com
    ("bedrock-runtime.*.amazonaws.com", "bedrock"),
    ("bedrock-runtime-fips.*.amazonaws.com", "bedrock"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral"),
    ("codestral.mistral.ai", "mistral"),
    ("api.deepseek.com", "deepseek"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("api.x.ai", "xai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cerebras.ai", "cerebras"),
    ("api.cohere.com", "cohere"),
    ("api.moonshot.ai", "moonshot"),
    ("dashscope.aliyuncs.com", "dashscope"),
    ("dashscope-intl.aliyuncs.com", "dashscope"),
    ("dashscope-us.aliyuncs.com", "dashscope"),
    ("portal.qwen.ai", "qwen"),  # Qwen Code signed in with Qwen OAuth
    ("opencode.ai", "opencode"),  # opencode's Zen gateway: /zen/v1, /zen/go/v1
    ("api.githubcopilot.com", "github-copilot"),
    (".githubcopilot.com", "github-copilot"),  # plan hosts: api.individual/.business/.enterprise
    ("api.z.ai", "zai"),
)

_DEFAULT_PORTS = {"ollama": 11434}

_WILDCARDS = {pattern: re.compile(re.escape(pattern).replace(r"\*", "[a-z0-9-]+") + "$")
              for pattern, _ in PROVIDERS if "*" in pattern}


def provider_for(host: str, port: int | None = None, api: str | None = None) -> str:
    """The provider's name for a host, else the host (with a non-default port) itself."""
    host = host.lower().rstrip(".")
    for pattern, name in PROVIDERS:
        if host == pattern or (pattern[0] in ".-" and host.endswith(pattern)):
            return name
        wildcard = _WILDCARDS.get(pattern)
        if wildcard is not None and wildcard.match(host):
            return name
    if api == "ollama" or port == _DEFAULT_PORTS["ollama"]:
        return "ollama"
    if port and port not in (80, 443):
        return f"{host}:{port}"
    return host
