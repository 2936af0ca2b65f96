"""Key handlers: how a keystore turns a passphrase or key file into a volume key.

`base` holds the interface every handler implements, `registry` finds handlers
through the `lvcrypt.key_handlers` entry points, and `secret`, `kdf` and `af`
are the crypto helpers the LUKS handlers share; keyslot areas are encrypted
with the one sector cipher of `lvcrypt.crypto`.
"""
