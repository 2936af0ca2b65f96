"""The LVM2 text metadata format: grammar, parser, writer, model and validation.

Public interface used by the core and by tools:
`parse_text`/`parse_bytes` -> `Section` tree, `write_text` tree -> text,
`tree_to_vg`/`vg_to_tree` tree <-> model, `validate` on a model.
"""
