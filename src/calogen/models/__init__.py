"""Generative model families behind one ``Generator`` interface (see DESIGN.md).

Not yet implemented: the families arrive with the training issues.
"""
