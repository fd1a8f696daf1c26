#!/usr/bin/env bash
# Installs the real coding agents that tests/test_agents.py runs, at pinned versions, under the
# user's cache. Versions are pinned to ones that run on Node.js 20 (Claude Code 2.1.198 and later
# want Node 22). An agent that cannot be installed (no npm, registry unreachable) is reported
# and left out; its tests then skip, saying so.
set -uo pipefail
dest="${XDG_CACHE_HOME:-$HOME/.cache}/usage-ledger-ci/agents"
mkdir -p "$dest"

npm_packages=(@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 @google/gemini-cli@0.61.0)
llm_packages=(llm==0.36 llm-anthropic==0.30 llm-gemini==0.35)
aider_packages=(aider-chat==0.86.2)

if command -v npm >/dev/null 2>&1; then
    if ! timeout 600 npm install --prefix "$dest" --no-audit --no-fund --loglevel=error "${npm_packages[@]}"; then
        echo "agents: npm install ${npm_packages[*]} failed; their tests will skip"
    fi
else
    echo "agents: npm not found; the Claude Code, Codex and Gemini CLI tests will skip"
fi

if [ ! -x "$dest/llm/bin/python" ]; then
    uv venv --quiet "$dest/llm" || true
fi
if ! timeout 600 uv pip install --quiet --python "$dest/llm/bin/python" "${llm_packages[@]}"; then
    echo "agents: uv pip install ${llm_packages[*]} failed; the llm tests will skip"
fi
# aider pins its own dependency versions (litellm, openai, ...): a venv of its own.
if [ ! -x "$dest/aider/bin/python" ]; then
    uv venv --quiet "$dest/aider" || true
fi
if ! timeout 600 uv pip install --quiet --python "$dest/aider/bin/python" "${aider_packages[@]}"; then
    echo "agents: uv pip install ${aider_packages[*]} failed; the aider test will skip"
fi
for agent in "$dest/node_modules/.bin/claude" "$dest/node_modules/.bin/codex" \
             "$dest/node_modules/.bin/gemini" "$dest/llm/bin/llm" "$dest/aider/bin/aider"; do
    if [ -x "$agent" ]; then
        echo "agents: $(basename "$agent") $("$agent" --version 2>/dev/null | head -1)"
    fi
done
