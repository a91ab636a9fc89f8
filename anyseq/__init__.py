"""AnySeq: AnyGPT (Zhan et al., ACL 2024) as a tested library.

Every modality becomes discrete tokens; one plain LLaMA reads and writes them all.
See DESIGN.md for the data flow this package follows.
"""

__version__ = "0.1.0"
