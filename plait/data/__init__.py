"""plait.data: resumable, composable input pipelines (text, TFDS without TensorFlow, images).

    stream = plait.data.Serial(plait.data.FromSequence(examples, shuffle=True, repeat=True),
                               plait.data.Batch(8))
    state = stream.get_state()   # JSON; `set_state(state)` on a fresh pipeline resumes exactly

Importing this package is light: TFDS, SentencePiece and image libraries load on first use.
"""
from plait.data.duplication import DuplicationInputs
from plait.data.duplication import duplication_inputs
from plait.data.images import image_folder
from plait.data.images import image_lm_inputs
from plait.data.images import images_to_tokens
from plait.data.images import offline_images
from plait.data.images import tokens_to_images
from plait.data.lm_inputs import LMInputs
from plait.data.lm_inputs import lm_inputs
from plait.data.lm_inputs import load_text
from plait.data.lm_inputs import tokenizer_for
from plait.data.pipeline import FromSequence
from plait.data.pipeline import Generate
from plait.data.pipeline import Pipeline
from plait.data.pipeline import Serial
from plait.data.pipeline import Source
from plait.data.pipeline import Stage
from plait.data.pipeline import Stream
from plait.data.prefetch import Prefetch
from plait.data.stages import AddLossWeights
from plait.data.stages import Batch
from plait.data.stages import BucketByLength
from plait.data.stages import ConcatenateToLMInput
from plait.data.stages import Filter
from plait.data.stages import Log
from plait.data.stages import Map
from plait.data.stages import PadToLength
from plait.data.stages import Shuffle
from plait.data.stages import TruncateToLength
from plait.data.text import chapters
from plait.data.text import crime_and_punishment
from plait.data.text import split_chapters
from plait.data.text import strip_gutenberg
from plait.data.text import text_file
from plait.data.tfds_source import TFDS
from plait.data.tokenizers import CharTokenizer
from plait.data.tokenizers import SentencePieceTokenizer
from plait.data.tokenizers import Tokenizer
