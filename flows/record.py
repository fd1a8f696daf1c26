"""Re-record flows/corpus.mitm: every corpus case through real mitmdump and addon.py.

    uv run python flows/record.py [CORPUS_DIR]     (default ../shared/corpus)

A stand-in provider (shared/tools/e2e/upstream.py) serves each recorded exchange over TLS, cut
at random byte offsets; mitmdump runs addon.py and writes every flow with its streamed body
(`-w`, `store_streamed_bodies`). Each flow carries its case's name and the usage the provider
reported (`metadata["expected"]`), so tests can replay it without the corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus").resolve()
    e2e_dir = corpus.parent / "tools" / "e2e"
    sys.path.insert(0, str(e2e_dir))
    import e2e  # the shared rig: stand-in provider + mitmdump

    out = HERE / "corpus.mitm"
    out.unlink(missing_ok=True)
    extra = [f"save_stream_file={out}", "store_streamed_bodies=true"]
    rig = e2e.Rig(ROOT, corpus, extra_sets=extra)
    rig.mitmdump += f" -s {HERE / 'expected.py'}"
    cases = e2e.case_files(corpus)
    with rig:
        with rig.client() as client:
            for name, case in cases:
                e2e.send_case(client, name, case)
        rig.stop_proxy()
    print(f"recorded {len(cases)} cases into {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
