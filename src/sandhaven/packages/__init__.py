"""App packages: the manifest, the signed ``.spk`` format, signing keys, packing and
installing. ``ls`` order of concepts: ``ids`` → ``keys`` → ``manifest`` → ``limits``
→ ``archive`` → ``spk`` → ``pack`` → ``install``.
"""
