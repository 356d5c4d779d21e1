"""A generated human-style clip corpus in the Something-Something-v2 layout (see docs/pretraining-data.md).

Household scenes without the robot; a floating hand-like tool performs SSv2 templates on household objects
("Pushing [something] from left to right", "Putting [something] onto [something]", "Opening [something]", ...);
every clip's outcome is checked from the simulator's state. `generate_corpus(CorpusConfig(out=..., clips=N))`
writes videos/<id>.webm + labels/*.json, which `robolearn pretrain prepare --source ssv2` reads unchanged.
"""

from robolearn.pretrain.corpus.config import SCENES, CorpusConfig, CorpusError, CorpusReport
from robolearn.pretrain.corpus.generate import generate_corpus
from robolearn.pretrain.corpus.templates import TEMPLATES

__all__ = ["SCENES", "TEMPLATES", "CorpusConfig", "CorpusError", "CorpusReport", "generate_corpus"]
