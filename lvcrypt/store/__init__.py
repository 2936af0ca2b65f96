"""lvm2's on-disk store: PV labels, PV headers, metadata areas and the commit protocol.

Binary layouts are declared once per structure (a struct format next to its
field list) and used both to read and to write; I/O happens in `disk.py` and
`commit.py`, everything else works on bytes.
"""
