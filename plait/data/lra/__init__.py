"""plait.data.lra: the Long Range Arena tasks (Tay et al. 2020) as deterministic batch sources.

Each `lra_<task>_inputs(split, batch_size, seed, ...)` returns a zero-argument callable giving a
fresh resumable Pipeline of `(inputs, targets, weights)` batches; see docs/lra.md ("Data").
The task modules (`listops`, `pathfinder`, `image`, `text`, `retrieval`) hold each task's
VOCAB_SIZE, N_CLASSES and MAX_LENGTH. Importing this package loads numpy only (TFDS on use).
"""
from plait.data.lra.image import lra_image_inputs
from plait.data.lra.listops import lra_listops_inputs
from plait.data.lra.pathfinder import lra_pathfinder_inputs
from plait.data.lra.retrieval import lra_retrieval_inputs
from plait.data.lra.tasks import TASKS
from plait.data.lra.tasks import available_tasks
from plait.data.lra.tasks import missing_data
from plait.data.lra.text import lra_text_inputs

__all__ = ['lra_listops_inputs', 'lra_pathfinder_inputs', 'lra_image_inputs', 'lra_text_inputs',
           'lra_retrieval_inputs', 'available_tasks', 'missing_data']
