"""Test-wide settings: CI runs hypothesis derandomized, so a landing is judged on examples that
were run before it, while local runs keep exploring new ones."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
