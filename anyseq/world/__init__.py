"""AnyWorld: the built-in multimodal world and both training corpora (DESIGN.md section 8).

Generators (`images`, `speech`, `music`, `text`), the two corpora (`pretrain`: AnyGPT's
stage-1 pairs; `dialogues`: AnyInstruct-style any-to-any dialogues), user JSONL data
(`userdata`), the sharded build (`build`, `config`, `store`) and the reading API
(`dataset`).
"""
